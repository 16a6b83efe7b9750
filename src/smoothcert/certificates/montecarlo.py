"""Monte Carlo certificates for noises without a closed form (the l-infinity families).

All bounds work on samples ell_i = log(pi_delta*/pi_0)(z_i), z_i ~ pi_0 i.i.d., at the worst-case
delta* of Theorems 2/5 (see :meth:`smoothcert.noises.Noise.log_ratio_from_stats`).

**DKW (the cached tables).** With probability >= 1 - beta the empirical CDF of ell is uniformly
within eps = sqrt(log(2/beta) / (2N)) of the true CDF G (Dvoretzky-Kiefer-Wolfowitz with
Massart's constant). On that event, for every p at once, V(p, r) >= 1 - eps -
G_hat(-ell_(ceil(N (p - eps)))), and V(p, r) > 1/2 holds whenever p > p_hat*(r) :=
G_hat(-ell_(j)) + eps with j = ceil(N (1/2 - eps)) — the sample version of the exact threshold
p*(r) = G(-median). This is the optimal lambda (a quantile of the likelihood ratio), so no grid
over lambda is needed and the bound holds uniformly in lambda and p. :func:`monte_carlo_table`
bounds each radius of a grid at level failure_prob / n_radii (union bound over the grid) and
:func:`monte_carlo_certificate` is the ``"monte-carlo"`` engine.

The paper's Hoeffding / McDiarmid bounds (Theorem 7, Algorithms 1 and 2) are not used by the
library (the DKW table is tighter and uniform in p); they live in the tests
(tests/test_certificates.py) as an independent check. :func:`distance_estimate` (D_hat) serves
the figures.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import SmoothCertError
from ..noises import Noise, NoiseStats
from .base import ENGINE_VERSION, _as_float_array
from .cache import cached_table, check_monte_carlo_table
from .table import TableCertificate

if TYPE_CHECKING:  # torch is not needed by the DKW bounds (fast start-up of the CLI)
    import torch


def dkw_epsilon(n: int, beta: float) -> float:
    """Half-width of the two-sided DKW band that holds with probability >= 1 - beta."""
    return math.sqrt(math.log(2.0 / beta) / (2.0 * n))


def dkw_threshold(ell: np.ndarray, beta: float) -> float:
    """Upper bound p_hat*(r) (valid with probability >= 1 - beta) of the smallest p_A that
    certifies the radius at which the log-ratio samples ``ell`` were drawn. Returns a value > 1
    when the samples cannot certify that radius at all."""
    n = ell.size
    eps = dkw_epsilon(n, beta)
    j = math.ceil(n * (0.5 - eps))
    if j < 1:
        return math.inf
    ell_j = np.partition(ell, j - 1)[j - 1]
    return float(np.count_nonzero(ell <= -ell_j)) / n + eps


def dkw_thresholds(ell: np.ndarray, beta: float) -> np.ndarray:
    """:func:`dkw_threshold` of each row of ``ell`` (a 2-D array, overwritten: each row is
    partitioned in place), bit for bit: one selection and one count over all the rows."""
    n = ell.shape[1]
    eps = dkw_epsilon(n, beta)
    j = math.ceil(n * (0.5 - eps))
    if j < 1:
        return np.full(ell.shape[0], math.inf)
    ell.partition(j - 1, axis=1)  # the count below does not depend on the order within a row
    ell_j = ell[:, j - 1].copy()
    return np.count_nonzero(ell <= -ell_j[:, None], axis=1) / n + eps


def distance_estimate(ell: np.ndarray, lam: float) -> float:
    """D_hat(lambda) = mean((lambda - exp(ell))_+), the Monte Carlo estimate of
    D_{F[0,1]}(lambda pi_0 || pi_delta) (section 4.1)."""
    return float(np.mean(np.maximum(lam - np.exp(np.minimum(ell, 700.0)), 0.0)))


def log_ratio_samples(
    noise,
    radii,
    norm: str,
    n: int,
    generator: torch.Generator,
    device=None,
    chunk: int = 1 << 16,
    progress=None,
) -> np.ndarray:
    """ell samples at each radius: an array (len(radii), n), sharing the same z samples.

    Memory stays bounded: z is drawn ``chunk`` rows at a time and reduced to a few statistics."""
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    out = np.empty((radii.size, n))
    done = 0
    while done < n:
        m = min(chunk, n - done)
        stats = noise.sample_stats(m, generator=generator, device=device)
        for i, r in enumerate(radii):
            out[i, done : done + m] = noise.log_ratio_from_stats(stats, r, norm).cpu().numpy()
        done += m
        if progress is not None:
            progress(m)
    return out


# ----------------------------------------------------------------------------- the table
#: most log-ratio values held at once by the DKW step of a Monte Carlo table (block x samples),
#: and the samples per evaluation of the log ratio on the CPU (cache-sized: ~1.5x faster)
_DKW_BLOCK_FLOATS, _DKW_CHUNK = 1 << 24, 1 << 16


def _progress_bar(on: bool, total: int, desc: str, unit: str):
    if not on:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)


def _radius_grid(
    unit: Noise, norm: str, samples: int, n_radii: int, generator, device
) -> np.ndarray:
    """n_radii radii up to 1.25 times the first power of 2 (from 1e-3) at which a pilot sample
    puts p*(r) above 0.9999 (the first draws of ``generator``)."""
    pilot = unit.sample_stats(min(20_000, samples), generator=generator, device=device)

    def pilot_estimate(r):
        ell = unit.log_ratio_from_stats(pilot, r, norm).cpu().numpy()
        return float(np.mean(ell <= -np.median(ell)))

    hi = 1e-3
    while pilot_estimate(hi) < 0.9999 and hi < 1e4:
        hi *= 2
    return np.linspace(0.0, 1.25 * hi, n_radii + 1)[1:]


def _draw_stats(unit: Noise, samples: int, generator, device, bar) -> NoiseStats:
    """The statistics of ``samples`` draws, in chunks of about 2^24 coordinates."""
    chunk = max(1, min(samples, (1 << 24) // unit.dim))
    parts, done = [], 0
    while done < samples:
        m = min(chunk, samples - done)
        parts.append(unit.sample_stats(m, generator=generator, device=device))
        done += m
        if bar is not None:
            bar.update(m)
    return NoiseStats.cat(parts)


def _dkw_grid_thresholds(
    unit: Noise, norm: str, st: NoiseStats, samples: int, radii: np.ndarray, beta: float, bar
) -> np.ndarray:
    """dkw_threshold at level ``beta`` of the log ratios at each radius, a block of radii at a
    time (on the CPU a cache-sized chunk of samples at a time: elementwise, so the same numbers),
    one selection and one count per block (dkw_thresholds, bit for bit dkw_threshold of each
    row); bounded memory."""
    block = max(1, min(radii.size, _DKW_BLOCK_FLOATS // samples))
    chunk = _DKW_CHUNK if st.device.type == "cpu" else samples
    rows = np.empty((block, samples))
    thresholds = np.empty(radii.size)
    for start in range(0, radii.size, block):
        part = radii[start : start + block]
        for lo in range(0, samples, chunk):
            st_chunk = st[lo : lo + chunk]
            for i, r in enumerate(part):
                rows[i, lo : lo + chunk] = (
                    unit.log_ratio_from_stats(st_chunk, r, norm).cpu().numpy()
                )
        thresholds[start : start + part.size] = dkw_thresholds(rows[: part.size], beta)
        if bar is not None:
            bar.update(part.size)
    return thresholds


def monte_carlo_table(
    noise: Noise,
    norm: str,
    samples: int,
    failure_prob: float,
    seed: int,
    n_radii: int,
    device=None,
    progress: bool = False,
):
    """``(radii, thresholds, info)`` of ``noise`` at sigma = 1: a pilot sample sets the radius
    grid, ``samples`` fresh draws give each radius its DKW threshold at level
    failure_prob / n_radii (union bound over the grid); r = 0 has threshold 1/2."""
    import torch

    unit = noise.with_sigma(1.0)
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    radii = _radius_grid(unit, norm, samples, n_radii, gen, device)
    desc = f"certificate {noise.name} d={noise.dim}"
    bar = _progress_bar(progress, samples, desc, "sample")
    st = _draw_stats(unit, samples, gen, device, bar)
    if bar is not None:
        bar.close()
    # the second step (seconds at 1M samples) gets its own bar
    bar = _progress_bar(progress, radii.size, f"{desc}: DKW thresholds", "radius")
    thresholds = _dkw_grid_thresholds(
        unit, norm, st, samples, radii, failure_prob / radii.size, bar
    )
    if bar is not None:
        bar.close()
    radii = np.concatenate([[0.0], radii])
    thresholds = np.concatenate([[0.5], thresholds])
    return radii, thresholds, {"samples": samples, "seed": seed, "n_radii": n_radii}


# ----------------------------------------------------------------------------- the engine
def _as_int(x, name: str) -> int:
    """An integer argument: ints, integral floats and numeric strings; anything else refused."""
    try:
        value = float(x) if not isinstance(x, (int, np.integer)) else x
        if isinstance(x, (bool, str, bytes)) or value != int(value):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise SmoothCertError(f"{name} must be an integer, got {x!r}") from None


def _device_type(device) -> str:
    import torch

    return torch.device(device).type if device is not None else "cpu"


def check_options(samples, failure_prob, seed, n_radii) -> tuple[int, float, int, int]:
    """The Monte Carlo options, checked: ``(samples, failure_prob, seed, n_radii)``."""
    samples, n_radii, seed = (
        _as_int(samples, "samples"),
        _as_int(n_radii, "n_radii"),
        _as_int(seed, "seed"),
    )
    if samples < 100:
        raise SmoothCertError(
            f"a Monte Carlo certificate needs at least 100 samples, got {samples}"
        )
    if isinstance(failure_prob, (str, bytes)) or np.ndim(failure_prob):
        raise SmoothCertError(f"failure_prob must be a number, got {failure_prob!r}")
    failure_prob = float(_as_float_array(failure_prob, "failure_prob"))
    if not 0 < failure_prob < 1:
        raise SmoothCertError(f"failure_prob must lie in (0, 1), got {failure_prob}")
    if n_radii < 1:
        raise SmoothCertError(f"n_radii must be >= 1, got {n_radii}")
    if not 0 <= seed < 2**63:
        raise SmoothCertError(f"seed must be an integer in [0, 2^63), got {seed}")
    return samples, failure_prob, seed, n_radii


def monte_carlo_certificate(
    noise: Noise,
    norm: str,
    *,
    samples,
    failure_prob,
    seed,
    n_radii,
    device=None,
    cache: bool = True,
    progress: bool = False,
    **_options,
) -> TableCertificate:
    """The ``"monte-carlo"`` engine: the DKW table of :func:`monte_carlo_table` (cached; the
    key holds every option and the device type), sound with probability >= 1 - failure_prob."""
    samples, failure_prob, seed, n_radii = check_options(samples, failure_prob, seed, n_radii)
    key = {
        "engine": ENGINE_VERSION,
        "kind": "monte-carlo",
        "noise": noise.name,
        "dim": noise.dim,
        "k": noise.k,
        "norm": norm,
        "samples": samples,
        "failure_prob": failure_prob,
        "seed": seed,
        "n_radii": n_radii,
        # random streams differ between CPU and CUDA generators: part of the identity
        "device_type": _device_type(device),
    }
    radii, thr, info = cached_table(
        key,
        lambda: monte_carlo_table(
            noise, norm, samples, failure_prob, seed, n_radii, device, progress
        ),
        use_cache=cache,
        check=check_monte_carlo_table(noise, norm, key),
    )
    return TableCertificate(noise, norm, radii, thr, "monte-carlo", failure_prob, 1.0, info=info)
