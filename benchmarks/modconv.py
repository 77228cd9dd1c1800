"""StyleGAN2's modulated convolution: genlab's non-fused path against one grouped convolution.

Both compute conv(x, w''_b) with per-sample weights w''_b = demod(s_b * w) (StyleGAN2 eqs. 1-3).
The grouped form builds B weight tensors and runs one convolution with B groups; genlab scales
the input channels by s, convolves with the shared weight and scales the outputs by the
demodulation factors. Checks that they agree, then prints the time of a forward + backward pass
of each and the ratio grouped / genlab, best of the repeats and the median of the paired ratios
(the machine is shared and noisy). Target >= 1.5 at the default sizes (the stylegan variant on
digits); on large maps (--channels 32 --side 32) the grouped form is faster (ratio ~0.8).

    python benchmarks/modconv.py [--batch 64] [--channels 64] [--side 8] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from genlab.nets.style import modulate, modulated_conv2d


def grouped(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """The fused reference: one grouped convolution with the per-sample weights."""
    batch, ch_in, height, width = x.shape
    w = modulate(weight, styles, demodulate=True)
    out = F.conv2d(
        x.reshape(1, batch * ch_in, height, width),
        w.reshape(-1, ch_in, *weight.shape[2:]),
        padding=1,
        groups=batch,
    )
    return out.reshape(batch, -1, *out.shape[2:])


def timed(fn, x, weight, styles) -> float:
    t0 = time.perf_counter()
    fn(x, weight, styles).square().sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--side", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)  # as in training
    gen = torch.Generator().manual_seed(0)
    c = args.channels
    x = torch.randn(args.batch, c, args.side, args.side, generator=gen, requires_grad=True)
    weight = torch.randn(c, c, 3, 3, generator=gen, requires_grad=True)
    styles = (torch.randn(args.batch, c, generator=gen) + 1).requires_grad_(True)

    def ours(x, w, s):
        return modulated_conv2d(x, w, s, demodulate=True, padding=1)

    torch.testing.assert_close(ours(x, weight, styles), grouped(x, weight, styles),
                               rtol=1e-4, atol=1e-4)  # fmt: skip
    for fn in (ours, grouped):  # warm-up
        timed(fn, x, weight, styles)
    times: dict[str, list[float]] = {"genlab": [], "grouped": []}
    for _ in range(args.repeats):
        times["genlab"].append(timed(ours, x, weight, styles))
        times["grouped"].append(timed(grouped, x, weight, styles))
    paired = [g / o for g, o in zip(times["grouped"], times["genlab"], strict=True)]
    print(
        f"batch {args.batch}, {c} -> {c} channels, {args.side}x{args.side}, forward + backward:\n"
        f"  genlab (non-fused) best {min(times['genlab']) * 1e3:.2f} ms, "
        f"grouped best {min(times['grouped']) * 1e3:.2f} ms\n"
        f"  ratio grouped / genlab: best {min(times['grouped']) / min(times['genlab']):.2f}, "
        f"median of paired {statistics.median(paired):.2f}"
    )


if __name__ == "__main__":
    main()
