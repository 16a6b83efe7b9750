"""Tests that kill mutants the distribution tests of ``test_noises.py`` cannot see (issue 11):
the mixed l-inf sampler's rejection envelope and squeeze, its rarely drawn exponential tails, and
the noise that training adds to every batch.

Statistical thresholds follow ``test_noises.py``: a fresh seed raises a false alarm with
probability about ``ALPHA`` = 1e-4 per comparison.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
import torch
from scipy import special, stats

from smoothcert.noises import LinfMixed, NoiseStats, base
from smoothcert.noises.linf_mixed import _log_density_t, _MaxNormSampler

ALPHA = 1e-4

# (d, k) pairs covering d = 1, moderate d, k close to d and the ImageNet dimension
ENVELOPE_CASES = [
    (1, 0.5),
    (1, 0.0),
    (3, 0.0),
    (10, 9.5),
    (100, 99.0),
    (1000, 300.0),
    (150528, 150520.0),
]
# float64 rounding of the log density (terms of size <= ~1e6 at d = 150528 that cancel)
ROUNDING = 1e-9


def _dense(sampler, per_bin=17):
    """Points filling every bin of the sampler's grid (ends included), with their bin index."""
    grid = sampler.grid.numpy()
    u = np.linspace(0.0, 1.0, per_bin)
    t = grid[:-1, None] + u[None, :] * np.diff(grid)[:, None]
    bins = np.broadcast_to(np.arange(grid.size - 1)[:, None], t.shape)
    return t.ravel(), bins.ravel()


@pytest.mark.parametrize("d,k", ENVELOPE_CASES)
def test_mixed_sampler_piecewise_envelope_bounds_the_density(d, k):
    """The mixed l-inf sampler's piecewise-constant envelope lies above the log density of
    t = log(||z||_inf / sigma) everywhere in every bin (acceptance probability <= 1), and the
    squeeze lies below it (a draw the squeeze accepts would be accepted by the density)."""
    s = _MaxNormSampler(d, k)
    t, b = _dense(s)
    logf = _log_density_t(t, d, k) - s.fmax
    env = s.env.numpy()[b]
    squeeze = env + s.squeeze.numpy()[b]
    # np.minimum for the envelope: excess of about |f'| * bin width (1e-3 .. 1e-1) in every bin
    assert np.max(logf - env) <= ROUNDING
    assert np.max(squeeze - logf) <= ROUNDING


@pytest.mark.parametrize("d,k", ENVELOPE_CASES)
def test_mixed_sampler_tangent_tails_bound_the_density(d, k):
    """Beyond the sampler's grid the exponential tails (tangent lines at the grid ends, with
    the slopes the sampler draws from) lie above the log density, and the slopes point outwards
    (left tail rising, right tail falling), so the tail pieces have finite mass."""
    s = _MaxNormSampler(d, k)
    grid = s.grid.numpy()
    assert s.s_lo > 0 > s.s_hi
    width = grid[-1] - grid[0]
    for end, slope, value, sign in (
        (grid[0], s.s_lo, s.logf_ends[0], -1.0),
        (grid[-1], s.s_hi, s.logf_ends[1], 1.0),
    ):
        t = end + sign * width * np.geomspace(1e-6, 10.0, 4000)
        with np.errstate(over="ignore"):  # far right: exp(2t) overflows, log density -inf
            logf = _log_density_t(t, d, k) - s.fmax
        tangent = value + (t - end) * slope
        assert np.max(logf - tangent) <= ROUNDING
        assert value == pytest.approx(
            _log_density_t(np.array([end]), d, k)[0] - s.fmax, abs=ROUNDING
        )


def test_mixed_sampler_max_norm_law_at_two_million_draws():
    """The mixed l-inf sampler's law of ||z||_inf matches its exact law at a sample size that
    resolves the shape of the law inside one envelope bin: at d = 1, pi_0(z) ~ |z|^-k
    exp(-z^2 / 2 sigma^2) gives (z / sigma)^2 ~ chi^2_{1-k}, and (z > 0) ~ Bernoulli(1/2)."""
    n, sigma, k = 2_000_000, 0.7, 0.5
    z = (
        LinfMixed(1, sigma=sigma, k=k)
        .sample(n, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
        .numpy()[:, 0]
    )
    # an envelope built with np.minimum gives a KS distance of 2.0e-3 here (p ~ 1e-7); the KS
    # critical value at ALPHA is 1.6e-3, the sampling noise ~ 6e-4
    assert stats.kstest((z / sigma) ** 2, stats.chi2(1 - k).cdf).pvalue > ALPHA
    assert stats.binomtest(int(np.count_nonzero(z > 0)), n, 0.5).pvalue > ALPHA


def _exact_t_cdf(d, k):
    """CDF of t = log(||z||_inf / sigma) in two cases with a closed form: d = 1 (m^2 ~
    chi^2_{1-k}) and k = 0 (z Gaussian, P(m <= x) = (2 Phi(x) - 1)^d)."""
    if d == 1:
        return lambda t: stats.chi2(1 - k).cdf(np.exp(2 * t))
    assert k == 0
    return lambda t: special.erf(np.exp(t) / math.sqrt(2)) ** d


@pytest.mark.parametrize("d,k,seed", [(1, 0.5, 1), (1, 0.0, 2), (5, 0.0, 3)])
def test_mixed_sampler_tail_branch_draws_the_exact_conditional_law(d, k, seed):
    """The mixed l-inf sampler's tail branch (exponential proposals beyond the grid, drawn with
    probability ~e^-40 at the default grid) draws the exact law: with a grid cut where the
    density has dropped by e^-1 only, the tails are drawn often, their frequencies match the
    exact tail probabilities and the tail draws follow the exact conditional laws."""
    n = 400_000
    s = _MaxNormSampler(d, k, drop=1.0)
    t = s.sample(n, torch.Generator().manual_seed(seed), torch.device("cpu")).numpy()
    cdf = _exact_t_cdf(d, k)
    lo, hi = float(s.grid[0]), float(s.grid[-1])
    f_lo, f_hi = cdf(lo), cdf(hi)
    left, right = t[t < lo], t[t > hi]
    # both tails carry 2-22 % of the mass here, so they are well sampled
    assert min(f_lo, 1 - f_hi) > 0.02
    assert stats.binomtest(left.size, n, f_lo).pvalue > ALPHA
    assert stats.binomtest(right.size, n, 1 - f_hi).pvalue > ALPHA
    assert stats.kstest(left, lambda x: cdf(x) / f_lo).pvalue > ALPHA
    assert stats.kstest(right, lambda x: (cdf(x) - f_hi) / (1 - f_hi)).pvalue > ALPHA
    assert stats.kstest(t, cdf).pvalue > ALPHA


# ===================================================================== training noise
def _constant_dataset(path, n, value):
    """A .npz data set of n constant 8x8 grey images (two classes), train and test splits."""
    x = np.full((n, 1, 8, 8), value, dtype=np.float32)
    y = np.arange(n) % 2
    np.savez(path, x_train=x, y_train=y, x_test=x[: n // 4], y_test=y[: n // 4])
    return path


@pytest.mark.parametrize("family,k", [("gaussian", 0.0), ("l2-family", 16.0)])
def test_training_batches_carry_noise_of_the_right_scale(tmp_path, monkeypatch, family, k):
    """Training adds fresh noise of the configured scale to every batch: the inputs the model
    sees (training and test passes) on constant images, minus the image, have mean 0 and the
    noise's per-coordinate standard deviation, and differ from image to image."""
    import smoothcert.models as models
    from smoothcert.noises import make_noise
    from smoothcert.training import NoiseSpec, train

    n, value, sigma0 = 512, 0.5, 0.25
    data = _constant_dataset(tmp_path / "grey.npz", n, value)
    seen = {True: [], False: []}
    original = models.get_architecture

    def recording(*args, **kwargs):
        model = original(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda module, inputs: seen[module.training].append(inputs[0].detach().clone())
        )
        return model

    monkeypatch.setattr(models, "get_architecture", recording)
    result = train(
        str(data),
        "digits_cnn",
        tmp_path / "run",
        NoiseSpec(family, k=k, sigma0=sigma0),
        epochs=1,
        batch=128,
        lr=0.01,
        progress=False,
        verbose=False,
    )
    noise = make_noise(family, 64, k=k, sigma0=sigma0)
    # per-coordinate std of the noise: E||z||^2 = sigma^2 (d - k) for both families here
    std = noise.sigma * math.sqrt((64 - k) / 64)
    assert result.epoch == 1
    for training, count in ((True, n), (False, n // 4)):
        z = (torch.cat(seen[training]) - value).double().reshape(-1, 64).numpy()
        assert z.shape[0] == count
        m = z.size
        # 5 standard errors: the mean's (std / sqrt m) and the std's (~ std / sqrt(2 m))
        assert abs(z.mean()) < 5 * std / math.sqrt(m)
        assert abs(z.std() / std - 1) < 5 / math.sqrt(2 * m)
        # fresh noise per image: no two images see the same perturbation
        assert np.unique(z, axis=0).shape[0] == count


# ===================================================================== parameters and identity
def test_matched_sigma_at_the_edges_of_its_domain():
    """The sigma-matching rule sigma = sqrt((d-1)/(d-1-k)) sigma0 holds up to the edge of its
    domain 0 <= k < d - 1 (and d = 1, k = 0 keeps sigma0); k at or beyond d - 1 is refused."""
    from smoothcert.errors import SmoothCertError
    from smoothcert.noises import matched_sigma

    assert matched_sigma(0.5, 1, 0.0) == 0.5
    assert matched_sigma(1.0, 2, 0.0) == 1.0
    assert matched_sigma(1.0, 2, 0.5) == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert matched_sigma(0.5, 10, 8.5) == pytest.approx(math.sqrt(9 / 0.5) * 0.5, rel=1e-15)
    for dim, k in ((1, 0.5), (2, 1.0), (2, 1.5), (10, 9.0)):
        with pytest.raises(SmoothCertError, match=r"0 <= k < d-1"):
            matched_sigma(1.0, dim, k)
    with pytest.raises(SmoothCertError, match=r"^sigma0 must be a finite number > 0"):
        matched_sigma(-1.0, 10, 1.0)


FAMILY_ARGS = [("gaussian", 0.0), ("l2-family", 3.0), ("linf-mixed", 2.0), ("linf-pure", 4.5)]


@pytest.mark.parametrize("name,k", FAMILY_ARGS)
def test_noise_identity_and_rescaling(name, k):
    """A noise's parameters (the cache keys and result files record them) name the family,
    dimension, k and sigma exactly; equality and hashing follow them, and with_sigma changes
    sigma only."""
    from smoothcert.noises import FAMILIES, make_noise

    noise = make_noise(name, 7, k=k, sigma=0.3)
    assert noise.params() == {"noise": name, "dim": 7, "k": k, "sigma": 0.3}
    unit = noise.with_sigma(1.0)
    assert type(unit) is type(noise) and unit.params() == {**noise.params(), "sigma": 1.0}
    same = FAMILIES[name](7, sigma=0.3, k=k)
    assert same == noise and hash(same) == hash(noise) and len({same, noise}) == 1
    assert unit != noise and noise != noise.params() and noise != 0.3
    others = [make_noise(n, 7, k=kk, sigma=0.3) for n, kk in FAMILY_ARGS if n != name]
    others.append(make_noise(name, 8, k=k, sigma=0.3))
    if k:
        others.append(make_noise(name, 7, k=k / 2, sigma=0.3))
    assert all(o != noise for o in others)
    assert len({hash(o) for o in [noise, unit, *others]}) == len(others) + 2
    assert repr(noise) == f"{type(noise).__name__}(dim=7, k={k:g}, sigma=0.3)"


@pytest.mark.parametrize("name,k", FAMILY_ARGS)
def test_sample_stats_default_chunks_and_empty_sample(name, k):
    """sample_stats with its default chunking (several chunks when n * d > 2^24) gives one
    float64 row of statistics per draw, and no row at all for n = 0 (an empty sample must not
    become one fake draw at the origin)."""
    from smoothcert.noises import make_noise

    noise = make_noise(name, 70_000, k=k, sigma=0.5)  # 2^24 // d = 239 draws per chunk
    gen = torch.Generator().manual_seed(5)
    stats_ = noise.sample_stats(300, generator=gen)
    present = [v for v in (getattr(stats_, f.name) for f in fields(NoiseStats)) if v is not None]
    assert len(stats_) == 300 and present
    assert all(v.shape == (300,) and v.dtype == torch.float64 for v in present)
    # ||z||_2 (l2 families) or the sum (l-inf families): every row a distinct draw
    assert (
        torch.unique(stats_.l2_norm if stats_.coord_sum is None else stats_.coord_sum).numel()
        == 300
    )
    empty = noise.sample_stats(0, generator=gen)
    assert len(empty) == 0
    assert all(
        getattr(empty, f.name) is None
        or (getattr(empty, f.name).shape == (0,) and getattr(empty, f.name).dtype == torch.float64)
        for f in fields(NoiseStats)
    )


@pytest.mark.parametrize("name,k", FAMILY_ARGS)
def test_log_prob_of_a_batch_of_batches(name, k):
    """log_prob reduces over the last axis only: a (2, 3, d) batch gives the (2, 3) values of
    its rows."""
    from smoothcert.noises import make_noise

    noise = make_noise(name, 5, k=k, sigma=0.8)
    z = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    flat = noise.log_prob(z.reshape(6, 5)).reshape(2, 3)
    assert torch.equal(noise.log_prob(z), flat)
    assert torch.equal(noise.log_prob(z[0, 0]), flat[0, 0])


def _as_tensor(x):
    """A sample, or the statistics of one as a tensor (the fields present, stacked)."""
    if isinstance(x, NoiseStats):
        return torch.stack(
            [getattr(x, f.name) for f in fields(NoiseStats) if getattr(x, f.name) is not None]
        )
    return x


@pytest.mark.parametrize("name,k", FAMILY_ARGS)
def test_samplers_follow_the_generator(name, k, monkeypatch):
    """Every sampler draws from the generator it is given (seeded runs reproduce, which resume
    and the coverage tests rely on): same seed, same draws; another seed, other draws; for
    sample, sample_stats and (for the mixed family) the max-norm sampler."""
    from smoothcert.noises import make_noise

    noise = make_noise(name, 6, k=k, sigma=0.7)

    def small_chunks(g):  # 10 draws at a time
        monkeypatch.setattr(base, "STATS_CHUNK_VALUES", 60)
        return noise.sample_stats(64, generator=g)

    for fn in (
        lambda g: noise.sample(64, generator=g),
        lambda g: noise.sample(64, generator=g, dtype=torch.float64),
        lambda g: noise.sample_stats(64, generator=g),
        small_chunks,
    ):
        a, b, c = (_as_tensor(fn(torch.Generator().manual_seed(s))) for s in (1, 1, 2))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_make_noise_defaults_to_k_zero():
    """make_noise without k builds the k = 0 member of the family (the Gaussian included)."""
    from smoothcert.noises import make_noise

    assert make_noise("gaussian", 4, sigma=1.0).k == 0.0
    assert make_noise("l2-family", 4, sigma=1.0).k == 0.0
    assert make_noise("linf-pure", 4, sigma0=1.0).sigma == 1.0


@pytest.mark.parametrize("d", [1, 2, 3])
def test_gaussian_sample_stats_norm_law_in_low_dimension(d):
    """The Gaussian's sample_stats draws ||z||_2 with its exact law in d = 1, 2, 3 (where the
    chi^2_{d-2} part of the sum of squares is absent, zero or chi^2_1): ||z||^2 / sigma^2 ~
    chi^2_d, and z_1 / sigma ~ N(0, 1)."""
    from smoothcert.noises import Gaussian

    s = Gaussian(d, sigma=0.6).sample_stats(20_000, generator=torch.Generator().manual_seed(d))
    l2, z1, total = s.l2_norm.numpy(), s.first_coord.numpy(), s.coord_sum.numpy()
    assert stats.kstest((l2 / 0.6) ** 2, stats.chi2(d).cdf).pvalue > ALPHA
    assert stats.kstest(z1 / 0.6, stats.norm.cdf).pvalue > ALPHA
    assert np.allclose(total, z1) == (d == 1)


# ================================================================ survivors of the mutation run
# (results/mutation/triage.json names these tests for the mutants they kill)
@pytest.mark.parametrize("name,k", FAMILY_ARGS)
def test_reduce_of_a_batch_of_batches(name, k):
    """reduce computes its statistics over the last axis only: a (2, 3, d) batch gives the
    (2, 3)-shaped float64 statistics of its rows (an axis +1 in place of -1 is caught here, where
    the two axes differ)."""
    from smoothcert.noises import make_noise

    noise = make_noise(name, 5, k=k, sigma=0.8)
    z = noise.sample(6, generator=torch.Generator().manual_seed(4)).reshape(2, 3, 5)
    flat = noise.reduce(z.reshape(6, 5))
    batched = noise.reduce(z)
    for f in fields(NoiseStats):
        a, b = getattr(flat, f.name), getattr(batched, f.name)
        assert (a is None) == (b is None), f.name
        if a is not None:
            assert a.shape == (6,) and a.dtype == torch.float64 and b.shape == (2, 3)
            assert torch.equal(b.reshape(6), a), f.name


def test_reduce_accumulates_the_l2_norm_in_float64_at_large_d():
    """Noise.reduce sums the squares of a float32 sample in float64: at d = 150528 its ||z||_2
    matches the float64 norm to 1e-10 (float32 accumulation is off by ~3e-8)."""
    from smoothcert.noises import Gaussian

    z = Gaussian(150528, sigma=1.0).sample(4, generator=torch.Generator().manual_seed(0))
    ref = z.double().square().sum(-1).sqrt()
    got = Gaussian(150528, sigma=1.0).reduce(z).l2_norm
    assert torch.max((got - ref).abs() / ref) < 1e-9


def test_noise_parameter_validation_edges_and_messages():
    """Noise parameters: numpy integers are valid dimensions (floats, strings and bools are
    not), sigma at both ends of SCALE_RANGE is accepted and just beyond them refused with the
    range in the message, non-numbers are refused by name, and n = 0 draws an empty sample."""
    from smoothcert.errors import SmoothCertError
    from smoothcert.noises import Gaussian, L2Family, LinfPure
    from smoothcert.noises.base import SCALE_RANGE, _check_dim

    assert _check_dim(np.int64(7)) == 7 and type(_check_dim(np.int32(3))) is int
    for bad in (7.0, "7", True, None):
        with pytest.raises(SmoothCertError, match=r"^dimension must be an integer >= 1"):
            _check_dim(bad)
    lo, hi = SCALE_RANGE
    assert Gaussian(3, sigma=lo).sigma == lo and Gaussian(3, sigma=hi).sigma == hi
    for bad in (lo / 2, hi * 2):
        with pytest.raises(SmoothCertError, match=r"^sigma must lie in \[1e-30, 1e\+30\], got"):
            Gaussian(3, sigma=bad)
    with pytest.raises(SmoothCertError, match=r"^sigma must be a number, got 'x'$"):
        Gaussian(3, sigma="x")
    with pytest.raises(SmoothCertError, match=r"^k must be a number, got 'x'$"):
        L2Family(3, sigma=1.0, k="x")
    for noise in (Gaussian(3, sigma=1.0), L2Family(3, sigma=1.0, k=1.0), LinfPure(3, sigma=1.0)):
        assert noise.sample(0).shape == (0, 3)
    with pytest.raises(SmoothCertError, match=r"^number of samples must be >= 0, got -1$"):
        Gaussian(3, sigma=1.0).sample(-1)


def test_mixed_sampler_torch_log_density_in_the_far_left_tail():
    """The mixed l-inf sampler's torch log density (evaluated for the draws its squeeze does
    not accept) matches (1-k) t - e^2t / 2 + (d-1) log erf(e^t / sqrt 2) down to t = -60,
    including the tiny-x series of log erf used below t = -18, which the grid reaches when
    d - k is small (d = 2, k = 1.5: grid from t = -81)."""
    from scipy import special as sp

    s = _MaxNormSampler(2, 1.5)
    assert float(s.grid[0]) < -60
    t = torch.linspace(-60.0, 2.0, 2001, dtype=torch.float64)
    tn = t.numpy()
    ref = (1 - 1.5) * tn - np.exp(2 * tn) / 2 + np.log(sp.erf(np.exp(tn) / math.sqrt(2))) - s.fmax
    # float64 rounding of terms of size <= 60 (a wrong series constant is off by >= 0.4)
    assert np.max(np.abs(s._logf(t).numpy() - ref)) < 1e-12


@pytest.mark.parametrize("d,k,seed", [(1, 0.5, 21), (5, 0.0, 22)])
def test_mixed_sampler_exact_on_a_coarse_grid(d, k, seed):
    """The mixed l-inf sampler is exact for any grid, so on a grid of 4 bins cut where the
    density has dropped by e^-1 (each bin and each tail carrying a large share of the mass) the
    draws follow the exact law of t = log(||z||_inf / sigma): bin choice, tail starts, tail
    envelopes and tail masses are all visible here, unlike on the default 4096-bin grid."""
    n = 200_000
    s = _MaxNormSampler(d, k, bins=4, drop=1.0)
    t = s.sample(n, torch.Generator().manual_seed(seed), torch.device("cpu")).numpy()
    assert t.shape == (n,)
    cdf = _exact_t_cdf(d, k)
    grid = s.grid.numpy()
    assert stats.kstest(t, cdf).pvalue > ALPHA
    # every piece (left tail, each bin, right tail) holds its exact probability
    edges = np.concatenate([[-np.inf], grid, [np.inf]])
    counts = np.histogram(t, bins=edges)[0]
    probs = np.diff(np.concatenate([[0.0], cdf(grid), [1.0]]))
    assert min(probs) > 0.01
    assert stats.chisquare(counts, probs * n).pvalue > ALPHA
