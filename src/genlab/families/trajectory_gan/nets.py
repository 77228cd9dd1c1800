"""Social GAN's networks, small (Gupta et al. 2018, sec. 3; github.com/agrimgupta92/sgan):

- ``TrajectoryEncoder``: a linear embedding of each step's displacement, then an LSTM; its last
  hidden state summarises one agent's motion (their sec. 3.3);
- ``SocialPooling``: for agent i, each other agent j's position relative to i (embedded) and
  j's hidden state through an MLP, then the element-wise max over j (their sec. 3.4, fig. 3):
  symmetric in the other agents, so their order does not matter;
- ``TrajectoryGenerator``: encoder -> pooling -> an MLP context, concatenated with noise z as
  the decoder LSTM's initial hidden state, which then rolls out the next displacements from the
  last observed one (their sec. 3.3; one pooling after the encoder, noise per agent);
- ``TrajectoryDiscriminator``: an encoder over the whole (observed + future) path of each agent
  and an MLP to a real/fake logit per agent (their "local" discriminator).

Inputs are absolute positions (..., agents, steps, 2); the networks read displacements and
relative positions only, so a scene moved as a whole is predicted moved alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.registry import Registry

TRAJECTORY_ARCHS: Registry = Registry("arch")


def displacements(path: Tensor) -> Tensor:
    """Per-step displacements of ``path`` (..., T, 2), the first set to 0 (sgan's rel)."""
    return torch.cat([torch.zeros_like(path[..., :1, :]), path.diff(dim=-2)], dim=-2)


class TrajectoryEncoder(nn.Module):
    """Displacements (B, T, 2) -> the LSTM's last hidden state (B, hidden)."""

    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Linear(2, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)

    def forward(self, rel: Tensor) -> Tensor:
        _, (h, _) = self.lstm(self.embed(rel))
        return h[-1]


class SocialPooling(nn.Module):
    """P_i = max_{j != i} MLP([embed(p_j - p_i), h_j]) (Gupta et al. 2018, sec. 3.4); zeros for
    a lone agent."""

    def __init__(self, hidden: int, embed: int, out: int) -> None:
        super().__init__()
        self.out = out
        self.embed = nn.Linear(2, embed)
        self.mlp = nn.Sequential(nn.Linear(embed + hidden, out), nn.ReLU(),
                                 nn.Linear(out, out), nn.ReLU())  # fmt: skip

    def forward(self, h: Tensor, pos: Tensor) -> Tensor:
        """``h`` (S, A, hidden) and positions ``pos`` (S, A, 2) -> (S, A, out)."""
        s, a, _ = h.shape
        if a == 1:
            return h.new_zeros(s, a, self.out)
        rel = pos[:, None, :, :] - pos[:, :, None, :]  # [s, i, j] = p_j - p_i
        pair = torch.cat([self.embed(rel), h[:, None].expand(s, a, a, h.shape[-1])], dim=-1)
        values = self.mlp(pair)  # (S, A_i, A_j, out)
        self_pair = torch.eye(a, dtype=torch.bool, device=h.device)[None, :, :, None]
        return values.masked_fill(self_pair, float("-inf")).amax(dim=2)


class TrajectoryGenerator(nn.Module):
    """G(observed (S, A, T_obs, 2), z (S, k, A, noise_dim)) -> k futures (S, k, A, pred_len, 2)."""

    def __init__(self, pred_len: int, noise_dim: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.pred_len, self.noise_dim = pred_len, noise_dim
        self.encoder = TrajectoryEncoder(embed, hidden)
        self.pool = SocialPooling(hidden, embed, hidden)
        self.context = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU())
        self.decoder_embed = nn.Linear(2, embed)
        self.decoder = nn.LSTMCell(embed, hidden + noise_dim)
        self.head = nn.Linear(hidden + noise_dim, 2)

    def encode(self, observed: Tensor) -> Tensor:
        """Each agent's context (S, A, hidden): its motion and the pooled others'."""
        s, a, t, _ = observed.shape
        h = self.encoder(displacements(observed).reshape(s * a, t, 2)).view(s, a, -1)
        pooled = self.pool(h, observed[:, :, -1])
        return self.context(torch.cat([h, pooled], dim=-1))

    def forward(self, observed: Tensor, z: Tensor) -> Tensor:
        s, k, a, _ = z.shape
        context = self.encode(observed)[:, None].expand(s, k, a, -1)
        h = torch.cat([context, z], dim=-1).reshape(s * k * a, -1)
        c = torch.zeros_like(h)
        step = (observed[:, :, -1] - observed[:, :, -2])[:, None].expand(s, k, a, 2)
        step = step.reshape(s * k * a, 2)
        pos = observed[:, None, :, -1].expand(s, k, a, 2).reshape(s * k * a, 2)
        out = []
        for _ in range(self.pred_len):
            h, c = self.decoder(self.decoder_embed(step), (h, c))
            step = self.head(h)
            pos = pos + step
            out.append(pos)
        return torch.stack(out, dim=1).view(s, k, a, self.pred_len, 2)


class TrajectoryDiscriminator(nn.Module):
    """D(observed (..., A, T_obs, 2), future (..., A, T_pred, 2)) -> a logit per agent (..., A)."""

    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        self.encoder = TrajectoryEncoder(embed, hidden)
        self.classifier = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, observed: Tensor, future: Tensor) -> Tensor:
        path = torch.cat([observed, future], dim=-2)
        lead = path.shape[:-2]
        h = self.encoder(displacements(path).reshape(-1, *path.shape[-2:]))
        return self.classifier(h).view(lead)


@TRAJECTORY_ARCHS.register("social_lstm")
def social_lstm(meta: dict, cfg) -> dict[str, nn.Module]:
    """G and D with LSTMs of ``width`` units (default 32; sgan's 64/128 at full size),
    embeddings of width / 2 and ``latent_dim`` noise entries per agent."""
    width = cfg.width or 32
    embed = max(4, width // 2)
    return {"G": TrajectoryGenerator(int(meta["pred_len"]), cfg.latent_dim, embed, width),
            "D": TrajectoryDiscriminator(embed, width)}  # fmt: skip


__all__ = [
    "TRAJECTORY_ARCHS", "SocialPooling", "TrajectoryDiscriminator", "TrajectoryEncoder",
    "TrajectoryGenerator", "displacements", "social_lstm",
]  # fmt: skip
