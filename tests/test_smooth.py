"""Smooth: PREDICT and CERTIFY of the smoothed classifier on toy base classifiers."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from smoothcert.errors import SmoothCertError
from smoothcert.noises import make_noise
from smoothcert.smooth import (
    Smooth,
    derive_seed,
    lower_confidence_bound,
    noise_block,
    upper_confidence_bound,
)

SHAPE = (1, 4, 4)
DIM = 16


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / "cache"))


class Constant(torch.nn.Module):
    def __init__(self, cls=2, num_classes=5):
        super().__init__()
        self.cls, self.num_classes = cls, num_classes
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(x.shape[0], self.num_classes)
        out[:, self.cls] = 1.0
        return out


class SignOfFirst(torch.nn.Module):
    """Class 1 when the first coordinate is > 0.5, else 0: a half-space classifier."""

    def forward(self, x):
        t = x.reshape(x.shape[0], -1)[:, 0]
        return torch.stack([(t <= 0.5).float(), (t > 0.5).float()], dim=1)


def random_guess(num_classes):
    def f(x):
        return torch.randn(x.shape[0], num_classes)

    return f


def gaussian(sigma=0.5, dim=DIM):
    return make_noise("gaussian", dim, sigma=sigma)


def test_constant_classifier_certifies_with_all_successes():
    n, alpha, sigma = 200, 0.001, 0.5
    smooth = Smooth(Constant(), 5, gaussian(sigma))
    cls, radius, p_a = smooth.certify(torch.rand(SHAPE), 20, n, alpha, 64, generator=0)
    assert cls == 2
    assert p_a == pytest.approx(alpha ** (1 / n), rel=1e-12)
    assert radius == pytest.approx(sigma * stats.norm.ppf(alpha ** (1 / n)), rel=1e-12)
    assert smooth.predict(torch.rand(SHAPE), n, alpha, 64, generator=0) == 2


def test_clopper_pearson_matches_reference_formula():
    # proportion_confint(nA, n, alpha=2a, method="beta")[0] == beta.ppf(a, nA, n - nA + 1)
    assert lower_confidence_bound(0, 10, 0.01) == 0.0
    assert lower_confidence_bound(10, 10, 0.01) == pytest.approx(0.01**0.1)
    assert lower_confidence_bound(7, 10, 0.05) == pytest.approx(stats.beta.ppf(0.05, 7, 4))
    assert upper_confidence_bound(0, 10, 0.01) == pytest.approx(1 - 0.01**0.1)
    assert upper_confidence_bound(10, 10, 0.01) == 1.0
    # two-sided interval at 2 alpha: its ends are the two one-sided bounds
    lo, hi = stats.binomtest(7, 10).proportion_ci(0.9, method="exact")
    assert lower_confidence_bound(7, 10, 0.05) == pytest.approx(lo)
    assert upper_confidence_bound(7, 10, 0.05) == pytest.approx(hi)


def test_random_guess_abstains():
    smooth = Smooth(random_guess(10), 10, gaussian())
    torch.manual_seed(0)
    cls, radius, p_a = smooth.certify(torch.rand(SHAPE), 20, 200, 0.001, 100, generator=1)
    assert (cls, radius) == (Smooth.ABSTAIN, 0.0)
    assert p_a < 0.5


def test_predict_abstains_on_a_fifty_fifty_classifier():
    # noise huge compared with the distance to the boundary: f(x + z) is a fair coin
    smooth = Smooth(SignOfFirst(), 2, gaussian(sigma=100.0))
    x = torch.full(SHAPE, 0.5)
    assert smooth.predict(x, 200, 0.001, 50, generator=3) == Smooth.ABSTAIN
    counts = smooth.sample_counts(x, 2000, 500, generator=3)
    assert counts.sum() == 2000 and abs(counts[0] - 1000) < 150


def test_counts_reproducible_and_independent_of_batch_size():
    smooth = Smooth(SignOfFirst(), 2, gaussian(sigma=0.3))
    x = torch.full(SHAPE, 0.6)
    num = 2 * noise_block(DIM) + 17
    assert noise_block(DIM) == 4096 and noise_block(150528) == 64
    a = smooth.sample_counts(x, num, 1000, generator=5)
    b = smooth.sample_counts(x, num, 3001, generator=5)
    c = smooth.sample_counts(x, num, 1000, generator=6)
    assert a.dtype == np.int64 and a.sum() == num
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # another seed, other samples (almost surely)
    # P(f = 1) = Phi(0.1 / 0.3)
    assert a[1] / a.sum() == pytest.approx(stats.norm.cdf(0.1 / 0.3), abs=0.06)
    r1 = smooth.certify(x, 20, 500, 0.01, 64, generator=9)
    r2 = smooth.certify(x, 20, 500, 0.01, 300, generator=9)
    assert r1 == r2
    g1 = torch.Generator().manual_seed(4)
    g2 = torch.Generator().manual_seed(4)
    assert smooth.certify(x, 20, 500, 0.01, 64, g1) == smooth.certify(x, 20, 500, 0.01, 64, g2)


def test_batches_bound_the_model_calls():
    sizes = []

    def f(x):
        sizes.append(x.shape[0])
        return torch.zeros(x.shape[0], 3)

    smooth = Smooth(f, 3, gaussian())
    smooth.sample_counts(torch.rand(SHAPE), 1000, 300, generator=0)
    assert sizes == [300, 300, 300, 100]


def test_noise_is_added_in_input_space_with_any_shape():
    seen = []

    def f(x):
        seen.append(x)
        return torch.zeros(x.shape[0], 2)

    x = torch.rand(2, 8)
    smooth = Smooth(f, 2, make_noise("l2-family", DIM, k=3, sigma=0.1))
    smooth.sample_counts(x, 10, 10, generator=0)
    assert seen[0].shape == (10, 2, 8)
    assert float((seen[0] - x).abs().max()) < 1.0
    assert not torch.equal(seen[0][0], x)


def test_certify_at_agrees_with_certify():
    x = torch.full(SHAPE, 0.7)
    smooth = Smooth(SignOfFirst(), 2, gaussian(sigma=0.25))
    cls, radius, p_a = smooth.certify(x, 20, 400, 0.001, 200, generator=11)
    assert cls == 1 and radius > 0
    for r, expected in [
        (0.0, True),
        (radius * 0.99, True),
        (radius, True),
        (radius * 1.01, False),
        (10.0, False),
    ]:
        got = smooth.certify_at(x, r, 20, 400, 0.001, 200, generator=11)
        assert got == (cls, expected, p_a)
    abstain = Smooth(random_guess(4), 4, gaussian())
    assert abstain.certify_at(x, 0.0, 20, 200, 0.001, 200, generator=1)[:2] == (-1, False)


def test_certify_at_with_quadrature_certificate_uses_the_exact_radius():
    x = torch.full(SHAPE, 0.7)
    smooth = Smooth(SignOfFirst(), 2, make_noise("l2-family", DIM, k=4, sigma0=0.25))
    cls, radius, p_a = smooth.certify(x, 20, 400, 0.001, 200, generator=2)
    assert smooth.certificate.method == "quadrature"
    assert radius == pytest.approx(smooth.certificate.radius(p_a, exact=True))
    assert radius >= smooth.certificate.radius(p_a)
    assert smooth.certify_at(x, radius, 20, 400, 0.001, 200, generator=2)[1]
    assert not smooth.certify_at(x, radius * 1.001 + 1e-9, 20, 400, 0.001, 200, generator=2)[1]


@pytest.mark.parametrize("sigma, x0", [(0.25, 0.65), (1.0, 1.2)])
def test_bilateral_radius_at_least_binary(sigma, x0):
    x = torch.full(SHAPE, x0)
    smooth = Smooth(SignOfFirst(), 2, gaussian(sigma=sigma))
    cls, r_bi, p_a, p_b = smooth.certify_detailed(
        x, 20, 500, 0.01, 250, generator=3, bilateral=True
    )
    assert cls == 1
    # the estimation samples of certify (phase 2 of the base seed 3), counted directly
    counts = smooth.sample_counts(x, 500, 100, generator=derive_seed(3, 2))
    assert p_a == lower_confidence_bound(int(counts[1]), 500, 0.005)  # alpha/2 each
    assert p_b == upper_confidence_bound(int(counts[0]), 500, 0.005)
    binary = smooth.certificate.radius(p_a)  # sigma Phi^-1(p_a), rounded down (safe side)
    assert binary == pytest.approx(sigma * stats.norm.ppf(p_a), rel=1e-14)
    assert r_bi >= binary
    # Cohen et al.'s Theorem 1 with both bounds
    assert r_bi == pytest.approx(0.5 * sigma * (stats.norm.ppf(p_a) - stats.norm.ppf(p_b)))
    # against the binary certificate at the full alpha (other bound, same samples)
    assert smooth.certify(x, 20, 500, 0.01, 250, generator=3)[2] >= p_a


def test_bilateral_on_many_classes_beats_binary():
    # class 0 on 60% of the noise, the rest spread over 8 classes: p_B << 1 - p_A
    def f(x):
        t = x.reshape(x.shape[0], -1)[:, 0]
        cls = torch.where(t < 0.8, 0, 1 + ((t * 1000).long() % 8))
        return torch.nn.functional.one_hot(cls, 9).float()

    smooth = Smooth(f, 9, gaussian(sigma=0.4))
    x = torch.full(SHAPE, 0.7)
    c1, r1, p1 = smooth.certify(x, 50, 2000, 0.01, 1000, generator=1)
    c2, r2, p2, pb = smooth.certify_detailed(x, 50, 2000, 0.01, 1000, generator=1, bilateral=True)
    assert c1 == c2 == 0
    assert p2 <= p1 and pb < 1 - p2
    assert r2 > r1


def test_linf_noise_needs_linf_norm_and_reports_table_failure_prob():
    noise = make_noise("linf-mixed", DIM, k=4, sigma=0.5)
    with pytest.raises(SmoothCertError, match="l2"):
        Smooth(Constant(), 5, noise).certify(torch.rand(SHAPE), 10, 100, 0.01, 50, 0)
    # predict needs no certificate
    assert Smooth(Constant(), 5, noise).predict(torch.rand(SHAPE), 100, 0.01, 50, 0) == 2
    smooth = Smooth(Constant(), 5, noise, norm="linf", samples=20_000, failure_prob=1e-3)
    cls, radius, p_a = smooth.certify(torch.rand(SHAPE), 10, 200, 0.001, 100, generator=0)
    assert cls == 2 and radius > 0
    assert smooth.failure_prob(0.001) == pytest.approx(0.002)
    note = smooth.confidence_note(0.001)
    assert "0.998" in note and "\n" not in note
    with pytest.raises(SmoothCertError, match="bilateral"):
        smooth.certify(torch.rand(SHAPE), 10, 200, 0.001, 100, generator=0, bilateral=True)


def test_radius_memoised_per_bound():
    calls = []
    smooth = Smooth(Constant(), 5, gaussian())
    cert = smooth.certificate
    orig = cert.radius

    def counting(p, *, exact=False):  # the signature every certificate's radius has
        calls.append(p)
        return orig(p, exact=exact)

    cert.radius = counting
    for seed in range(3):
        smooth.certify(torch.rand(SHAPE), 10, 100, 0.01, 100, generator=seed)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(x=torch.rand(3, 4, 4)), r"shape \(3, 4, 4\) has 48 values .* dimension 16"),
        (dict(x=torch.full(SHAPE, math.nan)), "NaN"),
        (dict(n0=0), "n0"),
        (dict(n=-5), "n must"),
        (dict(alpha=0.0), "alpha"),
        (dict(alpha=1.5), "alpha"),
        (dict(batch_size=0), "batch_size"),
        (dict(generator="seed"), "generator"),
    ],
)
def test_bad_inputs(bad, match):
    smooth = Smooth(Constant(), 5, gaussian())
    kwargs = dict(x=torch.rand(SHAPE), n0=10, n=100, alpha=0.01, batch_size=50, generator=0)
    kwargs.update(bad)
    with pytest.raises(SmoothCertError, match=match):
        smooth.certify(**kwargs)


def test_bad_model_outputs():
    x = torch.rand(SHAPE)
    nan = Smooth(lambda b: torch.full((b.shape[0], 3), math.nan), 3, gaussian())
    with pytest.raises(SmoothCertError, match="NaN"):
        nan.predict(x, 10, 0.01, 10, 0)
    wrong = Smooth(lambda b: torch.zeros(b.shape[0], 4), 3, gaussian())
    with pytest.raises(SmoothCertError, match=r"expected \(10, 3\)"):
        wrong.predict(x, 10, 0.01, 10, 0)


def test_derive_seed_stable():
    assert derive_seed(0, 1) == derive_seed(0, 1)
    assert derive_seed(0, 1) != derive_seed(1, 0)
    assert 0 <= derive_seed(2**70, -3) < 2**63
    assert derive_seed(1, 2) == 4775233734956296224  # results files depend on it: never change it
