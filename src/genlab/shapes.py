"""Image-side arithmetic shared by the architectures and the datasets that must fit them (a leaf:
data checks at prepare time what nets will need at train time, without importing nets)."""

from __future__ import annotations

from genlab.errors import ArchitectureError


def upsampling_plan(arch: str, size: int) -> tuple[int, int]:
    """(start, n): the image side is start * 2**n with 3 <= start <= 7, n as large as possible.

    8 -> (4, 1), 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).
    """
    n = 0
    while size % (2 ** (n + 1)) == 0 and size // 2 ** (n + 1) >= 4:
        n += 1
    start = size // 2**n
    if start > 7 or n == 0:
        raise ArchitectureError(
            f"arch {arch!r} needs an image side of the form s * 2**n with 4 <= s <= 7 and "
            f"n >= 1 (8, 12, 16, 28, 32, 64, ...); got {size}"
        )
    return start, n
