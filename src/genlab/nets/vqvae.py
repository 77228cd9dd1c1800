"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning") with a small
autoregressive prior over its code grid, trained in two stages as in DALL-E (Ramesh et al.
2021): first the autoencoder, then a causal transformer over the flattened codes, whose first
token is the class label (DALL-E's text prefix) or one learned start token.

Generation is a deterministic function of (z, y): z holds one standard normal number per grid
position and token i is the inverse-CDF draw of the prior's categorical at u_i = Phi(z_i).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.base import ArchitectureError, require_kind
from genlab.registry import Registry
from genlab.runtime import cuda_path

VQ_ARCHS: Registry = Registry("arch")
VQ_LOSSES: Registry = Registry("loss")

MAX_GRID_SIDE = 8  # the encoder halves the image until the code grid side is at most this


def downsampling_plan(arch: str, height: int, width: int) -> int:
    """Number n >= 1 of stride-2 halvings until the longer side is <= 8: 8 -> 1 (4x4),
    28 -> 2 (7x7), 32 -> 2 (8x8), 64 -> 3 (8x8). Both sides must be divisible by 2**n."""
    n = 1
    while max(height, width) / 2**n > MAX_GRID_SIDE:
        n += 1
    if height % 2**n or width % 2**n:
        raise ArchitectureError(
            f"arch {arch!r} halves the image {n} times down to a code grid of side <= "
            f"{MAX_GRID_SIDE}, so each side must be divisible by {2**n}; got {height}x{width}"
        )
    return n


class Encoder(nn.Module):
    """x (B, C, H, W) -> z_e (B, latent_dim, H / 2**n, W / 2**n): stride-2 convolutions doubling
    the channels, a 3x3 convolution, then a 1x1 convolution to ``latent_dim`` (no batch norm, so
    each sample's code depends on that sample only)."""

    def __init__(self, *, channels: int, width: int, latent_dim: int, n: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU()]
        ch = width
        for _ in range(n):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.ReLU()]
            ch *= 2
        layers += [nn.Conv2d(ch, ch, 3, 1, 1), nn.ReLU(), nn.Conv2d(ch, latent_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """The encoder mirrored with transposed convolutions; no output activation (the MSE target
    is the [-1, 1] image itself; generation clamps to [-1, 1])."""

    def __init__(self, *, channels: int, width: int, latent_dim: int, n: int):
        super().__init__()
        ch = width * 2**n
        layers: list[nn.Module] = [nn.Conv2d(latent_dim, ch, 3, 1, 1), nn.ReLU()]
        for _ in range(n):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1), nn.ReLU()]
            ch //= 2
        layers.append(nn.Conv2d(ch, channels, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


# ---------------------------------------------------------------- the prior
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position i attends to positions <= i only. With a
    ``cache`` (a dict kept by the caller) it reads one new position at a time and attends to the
    keys and values cached from the earlier calls (incremental decoding)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim = {dim} must be divisible by heads = {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: Tensor, cache: dict[str, Tensor] | None = None) -> Tensor:
        b, n, d = h.shape
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if n != 1:
                raise ValueError(f"with a cache, attention reads one position at a time; got {n}")
            if cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
            out = F.scaled_dot_product_attention(q, k, v)  # the newest position sees all
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block (GPT-2): h + attn(ln(h)), then h + mlp(ln(h))."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)  # on the residual branches (GPT-2), training only

    def forward(self, h: Tensor, cache: dict[str, Tensor] | None = None) -> Tensor:
        h = h + self.drop(self.attn(self.ln1(h), cache))
        return h + self.drop(self.mlp(self.ln2(h)))


class CodePrior(nn.Module):
    """p(c | y) = prod_i p(c_i | c_<i, y) over the raster-ordered code grid: a causal transformer
    whose input is [start, c_0, ..., c_{N-2}] plus learned position embeddings. The start token
    is the class embedding when ``num_classes`` > 0 (a one-token prefix, as DALL-E prefixes the
    text), else one learned vector."""

    def __init__(
        self,
        *,
        num_codes: int,  # codebook size K: the vocabulary
        length: int,  # N = H' * W' positions
        num_classes: int = 0,  # > 0: the start token is the class embedding
        dim: int = 64,  # d_model
        depth: int = 2,  # transformer blocks
        heads: int = 4,
        dropout: float = 0.0,  # on the residual branches while training
    ):
        super().__init__()
        self.num_codes, self.length, self.num_classes = num_codes, length, num_classes
        self.start = nn.Embedding(max(num_classes, 1), dim)
        self.tokens = nn.Embedding(num_codes, dim)
        self.pos = nn.Parameter(torch.zeros(length, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(depth))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        for p in (self.start.weight, self.tokens.weight, self.pos):
            nn.init.normal_(p, 0.0, 0.02)

    def forward(self, idx: Tensor, y: Tensor | None = None) -> Tensor:
        """idx (B, L) codes, 1 <= L <= N -> logits (B, L, K); row i predicts c_i from c_<i and y
        (so it never reads idx[:, i:])."""
        b, n = idx.shape
        if not 1 <= n <= self.length:
            raise ValueError(f"the prior reads 1 to {self.length} codes per sample; got {n}")
        h = torch.cat([self.start_token(b, y), self.tokens(idx[:, :-1])], dim=1) + self.pos[:n]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln(h))

    def start_token(self, batch: int, y: Tensor | None) -> Tensor:
        """(B, 1, dim): the class embedding of y, or the learned start vector."""
        if not self.num_classes:
            return self.start.weight[0].expand(batch, 1, -1)
        if y is None:
            raise ValueError("this prior is conditioned on the class label: pass y")
        return self.start(y)[:, None]

    @torch.no_grad()
    def sample(self, u: Tensor, y: Tensor | None = None) -> Tensor:
        """Codes (B, N) drawn one position at a time, c_i = F_i^{-1}(u_i) with F_i the CDF of
        p(c_i | c_<i, y); keys and values are cached, so each step reads one new token."""
        caches: list[dict[str, Tensor]] = [{} for _ in self.blocks]
        idx = torch.zeros(len(u), self.length, dtype=torch.long, device=u.device)
        h = self.start_token(len(u), y)
        for i in range(self.length):
            h = h + self.pos[i]
            for block, cache in zip(self.blocks, caches, strict=True):
                h = block(h, cache)
            probs = self.head(self.ln(h))[:, 0].float().softmax(-1)
            idx[:, i] = inverse_cdf_sample(probs, u[:, i])
            h = self.tokens(idx[:, i])[:, None]
        return idx


def code_cross_entropy(logits: Tensor, codes: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of a sequence of codes: logits (B, N, K), codes (B, N) -> per position
    (B, N) for ``reduction="none"``, else reduced over every position.

    On CPU this is ``F.cross_entropy`` on the (B, K, N) view, as genlab always computed it. On
    CUDA that view runs the spatial ``nll_loss2d`` kernel, which has no deterministic
    implementation (it accumulates with atomics, and ``torch.use_deterministic_algorithms``
    refuses it); the (B N, K) rows use the 1-D ``nll_loss`` kernel instead, which is
    deterministic. Same values up to rounding; the CPU bits are unchanged."""
    if not cuda_path(logits):
        return F.cross_entropy(logits.transpose(1, 2), codes, reduction=reduction)
    flat = F.cross_entropy(logits.flatten(0, 1), codes.flatten(), reduction=reduction)
    return flat.view(codes.shape) if reduction == "none" else flat


def normal_cdf(z: Tensor) -> Tensor:
    """Phi(z) = (1 + erf(z / sqrt 2)) / 2."""
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def inverse_cdf_sample(probs: Tensor, u: Tensor) -> Tensor:
    """The smallest k with F(k) = sum_{j<=k} p_j > u, per row: probs (B, K), u (B,) in [0, 1).
    With u ~ U(0, 1) this draws k with probability p_k."""
    cdf = probs.float().cumsum(dim=-1)
    k = torch.searchsorted(cdf, u.float()[:, None].contiguous(), right=True)[:, 0]
    return k.clamp(max=probs.shape[-1] - 1)  # u >= F(K-1) only by rounding


# ---------------------------------------------------------------- the model
class VQOutput(NamedTuple):
    z_e: Tensor  # (B, D, H', W') encoder output
    z_q: Tensor  # (B, D, H', W') the nearest codes (gradient flows to the codebook only)
    indices: Tensor  # (B, H', W') long: the code of each grid position
    x_rec: Tensor  # (B, C, H, W) decoder output on the straight-through codes


class VQVAE(nn.Module):
    """Images in [-1, 1] -> a (H', W') grid of codes from a K x D codebook -> images, plus the
    code prior that makes it a generator: ``forward(z, y)`` maps (B, noise_dim) standard normal
    noise (and labels when conditional) to images in [-1, 1]."""

    def __init__(
        self,
        *,
        channels: int,
        size: tuple[int, int],  # (H, W) of the images
        width: int,  # channels of the first conv; doubled at each halving
        latent_dim: int,  # D: dimension of the codes
        codebook_size: int,  # K
        num_classes: int = 0,  # > 0: the prior is conditioned on the label
        prior_dim: int = 64,
        prior_depth: int = 2,
        prior_heads: int = 4,
        prior_dropout: float = 0.2,  # the prior overfits small data sets fast (digits: 1437)
    ):
        super().__init__()
        n = downsampling_plan("vq_vae", *size)
        self.grid = (size[0] // 2**n, size[1] // 2**n)
        self.noise_dim = self.grid[0] * self.grid[1]
        self.num_classes = num_classes
        self.latent_dim, self.codebook_size = latent_dim, codebook_size
        self.encoder = Encoder(channels=channels, width=width, latent_dim=latent_dim, n=n)
        self.decoder = Decoder(channels=channels, width=width, latent_dim=latent_dim, n=n)
        self.codebook = nn.Embedding(codebook_size, latent_dim)
        nn.init.uniform_(self.codebook.weight, -1 / codebook_size, 1 / codebook_size)
        self.prior = CodePrior(
            num_codes=codebook_size, length=self.noise_dim, num_classes=num_classes,
            dim=prior_dim, depth=prior_depth, heads=prior_heads, dropout=prior_dropout,
        )  # fmt: skip

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Encoder, decoder and codebook: what the first training stage updates."""
        return [*self.encoder.parameters(), *self.decoder.parameters(), self.codebook.weight]

    # ------------------------------------------------------------ autoencoder
    def quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest-code quantisation (eq. 1-2): k = argmin_j ||z_e - e_j||^2 per position.
        Returns z_q = e_k as (B, D, H', W') (differentiable in the codebook) and k (B, H', W')."""
        flat = z_e.detach().float().permute(0, 2, 3, 1).reshape(-1, self.latent_dim)
        e = self.codebook.weight.detach().float()
        with torch.autocast(z_e.device.type, enabled=False):  # distances in fp32 under bf16
            dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.T + e.pow(2).sum(1)
        idx = dist.argmin(dim=1).view(z_e.shape[0], *z_e.shape[2:])
        return self.embed(idx).to(z_e.dtype), idx

    def embed(self, idx: Tensor) -> Tensor:
        """Codes (B, H', W') -> their vectors (B, D, H', W')."""
        return self.codebook(idx).permute(0, 3, 1, 2)

    def autoencode(self, x: Tensor) -> VQOutput:
        """Encode, quantise, decode through the straight-through estimator
        z_e + sg[z_q - z_e] (sec. 3.2): the decoder's gradient is copied to the encoder."""
        z_e = self.encoder(x)
        z_q, idx = self.quantize(z_e)
        x_rec = self.decoder(z_e + (z_q - z_e).detach())
        return VQOutput(z_e, z_q, idx, x_rec)

    def encode_indices(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> codes (B, H', W') long."""
        return self.quantize(self.encoder(x))[1]

    def decode_indices(self, idx: Tensor) -> Tensor:
        """Codes (B, H', W') -> images in [-1, 1] (the decoder output clamped)."""
        return self.decoder(self.embed(idx)).clamp(-1, 1)

    # ------------------------------------------------------------ prior
    def check_labels(self, y: Tensor | None, batch: int) -> Tensor | None:
        """The labels a conditional prior needs, validated; None for an unconditional one
        (which ignores y)."""
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError(
                "this VQ-VAE's prior is conditioned on the class label (conditional: true): "
                f"pass y, a (B,) int64 tensor of labels in [0, {self.num_classes})"
            )
        if y.shape != (batch,) or y.dtype != torch.long:
            raise ValueError(
                f"y must be a ({batch},) int64 tensor of labels; got {tuple(y.shape)} {y.dtype}"
            )
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}); got {int(y.min())}..{int(y.max())}"
            )
        return y

    def prior_logits(self, idx: Tensor, y: Tensor | None = None) -> Tensor:
        """Codes (B, H', W') -> the prior's logits (B, N, K) in raster order."""
        return self.prior(idx.flatten(1), self.check_labels(y, len(idx)))

    def prior_nll(self, idx: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(c | y) per sample in nats, summed over the N positions."""
        nll = code_cross_entropy(self.prior_logits(idx, y).float(), idx.flatten(1), "none")
        return nll.sum(1)

    @torch.no_grad()
    def sample_indices(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Codes (B, H', W') drawn autoregressively: c_i = F_i^{-1}(Phi(z_i)), with F_i the CDF
        of p(c_i | c_<i, y) - a deterministic function of (z, y)."""
        if z.ndim != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(
                f"z must be (B, noise_dim = {self.noise_dim}) noise, one number per code "
                f"position; got {tuple(z.shape)}"
            )
        idx = self.prior.sample(normal_cdf(z.float()), self.check_labels(y, len(z)))
        return idx.view(len(z), *self.grid)

    @torch.no_grad()
    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Generate: noise (B, noise_dim) [and labels (B,)] -> images in [-1, 1]."""
        return self.decode_indices(self.sample_indices(z, y))


@VQ_ARCHS.register("vq_vae")
def build_vq_vae(meta: dict, cfg) -> dict[str, nn.Module]:
    require_kind("vq_vae", meta, "image")
    channels, height, width = meta["shape"]
    model = VQVAE(
        channels=channels,
        size=(height, width),
        width=cfg.width or 32,
        latent_dim=cfg.latent_dim,
        codebook_size=cfg.codebook_size,
        num_classes=meta["num_classes"] if cfg.conditional else 0,
    )
    return {"vae": model}


# ---------------------------------------------------------------- the loss
def codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """||sg[z_e] - e||^2 (eq. 3, second term), mean over elements: moves the codes only."""
    return F.mse_loss(z_q.float(), z_e.detach().float())


def commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """||z_e - sg[e]||^2 (eq. 3, third term, before the beta), mean over elements: moves the
    encoder only."""
    return F.mse_loss(z_e.float(), z_q.detach().float())


def perplexity(indices: Tensor, num_codes: int) -> Tensor:
    """exp(entropy) of the code frequencies: 1 if one code is used, K if all are used evenly."""
    p = torch.bincount(indices.flatten(), minlength=num_codes).float() / indices.numel()
    return torch.exp(-(p * p.clamp_min(1e-12).log()).sum())


@VQ_LOSSES.register("vq")
class VQLoss:
    """The VQ-VAE objective (van den Oord et al. 2017, eq. 3), each term a mean over elements:
    MSE(x, x_rec) on [-1, 1] pixels + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2."""

    def __init__(self, commitment: float = 0.25) -> None:
        self.commitment = commitment

    def __call__(self, model: VQVAE, x: Tensor) -> tuple[Tensor, dict[str, float], VQOutput]:
        out = model.autoencode(x)
        recon = F.mse_loss(out.x_rec.float(), x.float())
        codebook = codebook_loss(out.z_e, out.z_q)
        commitment = commitment_loss(out.z_e, out.z_q)
        loss = recon + codebook + self.commitment * commitment
        stats = {
            "recon": recon.detach(),
            "codebook": codebook.detach(),
            "commitment": commitment.detach(),
            "perplexity": perplexity(out.indices, model.codebook_size).detach(),
        }
        return loss, stats, out
