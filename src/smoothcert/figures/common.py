"""What the computation of every figure shares: single-threaded runs, one seeded generator per
draw, a private certificate cache, argument checks and the shape of a figure's result.

Nothing here draws: the figures' numbers are library code and need no matplotlib.
"""

from __future__ import annotations

import contextlib
import functools
import zlib

import numpy as np
import torch

from ..errors import SmoothCertError

FAMILY_LABELS = {
    "l2-family": "l2 family, eq. (8)",
    "linf-mixed": "mixed, eq. (9)",
    "linf-pure": "pure l-inf, eq. (10)",
    "gaussian": "Gaussian",
}


@contextlib.contextmanager
def one_torch_thread():
    """Run torch and the BLAS single-threaded: reductions then do not depend on the core count
    (a multi-threaded BLAS matrix-vector product in the quadrature moves last digits)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def reproducible(func):
    """Run a figure function single-threaded throughout (see :func:`one_torch_thread`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with one_torch_thread():
            return func(*args, **kwargs)

    return wrapper


def generator(seed: int, *labels) -> torch.Generator:
    """A CPU generator seeded from ``seed`` and a label (one independent stream per draw)."""
    tag = zlib.crc32(repr(labels).encode())
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + tag) % (2**63 - 1))


@contextlib.contextmanager
def private_certificate_cache():
    """Certificate tables built afresh by this code, in a temporary cache that is removed
    afterwards: a figure does not depend on what the user's cache holds (a table cached by an
    earlier development state under the same key once moved theorem3's radii by 1e-6)."""
    import os
    import tempfile

    from ..certificates import cache

    saved_env, saved_memory = os.environ.get("SMOOTHCERT_CACHE"), dict(cache._MEMORY)
    with tempfile.TemporaryDirectory(prefix="smoothcert-figures-") as tmp:
        os.environ["SMOOTHCERT_CACHE"] = tmp
        cache._MEMORY.clear()
        try:
            yield
        finally:
            if saved_env is None:
                os.environ.pop("SMOOTHCERT_CACHE", None)
            else:
                os.environ["SMOOTHCERT_CACHE"] = saved_env
            cache._MEMORY.clear()
            cache._MEMORY.update(saved_memory)


def check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise SmoothCertError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def check_ks(ks, d: int) -> list[float]:
    """The shape parameters ``ks`` as floats, each in [0, d)."""
    ks = [float(k) for k in ks]
    if not ks or any(not 0 <= k < d for k in ks):
        raise SmoothCertError(f"every k must satisfy 0 <= k < d = {d}, got {ks}")
    return ks


def figure_result(
    name: str, title: str, headline: str, settings: dict, results: dict, checks: dict, series
) -> dict:
    """The dict every figure returns (key order is that of the written NAME.json): the title
    doubles as the caption; ``files`` is filled when the figure is written."""
    return {
        "name": name,
        "title": title,
        "caption": title,
        "headline": headline,
        "settings": settings,
        "results": results,
        "checks": checks,
        "series": series,
        "files": [],
    }


def running_max(values) -> float:
    """max(0, values...) taken in order, as ``worst = max(worst, value)`` from 0 (a NaN is
    passed over)."""
    return functools.reduce(max, values, 0.0)


def join_g(values) -> str:
    """``1, 2.5, 4``: numbers in %g, comma-separated (the lists in the captions)."""
    return ", ".join(f"{x:g}" for x in values)
