"""The DKW step of a Monte Carlo certificate table, done a block of radii at a time.

`_monte_carlo_table` selects the order statistic and counts for a block of radii at once
(`dkw_thresholds`) instead of calling `dkw_threshold` radius by radius. Cached tables are keyed
by their parameters, not by the code that built them, so the thresholds must stay bit for bit
those of the per-radius loop: otherwise a table built now and one read from an older cache would
differ for the same key.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import smoothcert.certificates as certs
from smoothcert.certificates.montecarlo import dkw_threshold, dkw_thresholds
from smoothcert.noises import NoiseStats, make_noise


def _old_table(noise, norm, samples, failure_prob, seed, n_radii):
    """The table of the per-radius loop (the code before the blocks), for comparison."""
    unit = noise.with_sigma(1.0)
    gen = torch.Generator().manual_seed(seed)
    pilot = unit.sample_stats(min(20_000, samples), generator=gen)

    def pilot_estimate(r):
        ell = unit.log_ratio_from_stats(pilot, r, norm).cpu().numpy()
        return float(np.mean(ell <= -np.median(ell)))

    hi = 1e-3
    while pilot_estimate(hi) < 0.9999 and hi < 1e4:
        hi *= 2
    radii = np.linspace(0.0, 1.25 * hi, n_radii + 1)[1:]
    chunk = max(1, min(samples, (1 << 24) // unit.dim))
    parts, done = [], 0
    while done < samples:
        m = min(chunk, samples - done)
        parts.append(unit.sample_stats(m, generator=gen))
        done += m
    st = NoiseStats.cat(parts)
    beta = failure_prob / radii.size
    thresholds = np.array(
        [dkw_threshold(unit.log_ratio_from_stats(st, r, norm).cpu().numpy(), beta) for r in radii]
    )
    return np.concatenate([[0.0], radii]), np.concatenate([[0.5], thresholds])


@pytest.mark.parametrize(
    "name,dim,k", [("linf-mixed", 16, 0.0), ("linf-mixed", 24, 3.0), ("linf-pure", 12, 2.0)]
)
@pytest.mark.parametrize("block_floats,chunk", [(7 * 3001, 1000), (1 << 24, 1 << 16)])
def test_blocked_table_is_bit_identical_to_the_per_radius_loop(
    name, dim, k, block_floats, chunk, monkeypatch
):
    """The thresholds of a Monte Carlo table built a block of radii and a chunk of samples at a
    time equal those of the per-radius loop exactly (blocks of 7 radii and chunks of 1000
    samples, each with a partial last one; and one block, one chunk)."""
    monkeypatch.setattr(certs.montecarlo, "_DKW_BLOCK_FLOATS", block_floats)
    monkeypatch.setattr(certs.montecarlo, "_DKW_CHUNK", chunk)
    noise = make_noise(name, dim, k=k, sigma=0.5)
    radii, thr, _ = certs.montecarlo.monte_carlo_table(noise, "linf", 3001, 1e-3, 5, 40)
    old_radii, old_thr = _old_table(noise, "linf", 3001, 1e-3, 5, 40)
    assert np.array_equal(radii, old_radii)
    assert np.array_equal(thr, old_thr), np.flatnonzero(thr != old_thr)


@pytest.mark.parametrize("n,beta", [(1, 0.5), (2, 0.9), (5, 0.1), (101, 1e-3), (4000, 1e-5)])
def test_dkw_thresholds_equals_dkw_threshold_row_by_row(n, beta):
    """dkw_thresholds of a 2-D array equals dkw_threshold of each row bit for bit, with ties,
    infinite values and the case where no radius is certified (j < 1: +inf)."""
    rng = np.random.default_rng(n)
    ell = np.round(rng.normal(size=(9, n)), 1)  # many ties, and ell_j = -ell_j cases
    ell[1] = -ell[0]
    ell[2, : n // 2] = -math.inf
    ell[3, :] = 0.0
    want = np.array([dkw_threshold(row.copy(), beta) for row in ell])
    got = dkw_thresholds(ell.copy(), beta)
    assert got.dtype == np.float64 and np.array_equal(got, want), (got, want)
