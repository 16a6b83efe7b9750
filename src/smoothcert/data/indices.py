"""Which inputs of a split a run takes: the reference's loop over the data set."""

from __future__ import annotations

from ..errors import SmoothCertError


def select_indices(length: int, skip: int, max_index: int, start: int = 0) -> list[int]:
    """The reference loop: every ``skip``-th index of the split from ``start`` (0 in the
    reference), stopping at index ``max`` (``-1``: no limit). ``0 <= start < length``; no index
    at all is an error (no header-only OUTFILE is written)."""
    if not 0 <= start < length:
        raise SmoothCertError(
            f"--start must lie in [0, {length}) (the split has {length} inputs), got {start}"
        )
    stop = length if max_index < 0 else min(length, max_index)
    indices = list(range(start, stop, skip))
    if not indices:
        raise SmoothCertError(
            f"no input selected (split of {length}, --start {start}, "
            f"--max {max_index}): nothing to do"
        )
    return indices
