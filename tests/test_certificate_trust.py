"""Trust in certificate numbers: the Gaussian closed form rounded toward the safe side (checked
against 50-digit mpmath), and the on-disk certificate cache refusing doctored, foreign, partial
or inconsistent tables (digest, plausibility, spot-check against the exact engine, lock).

The mpmath references are independent of scipy: Phi^-1(p) = sqrt(2) erfinv(2p - 1) and
Phi(x) = ncdf(x) at 50 significant digits, evaluated at the exact float inputs.
"""

import functools
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import warnings

import mpmath as mp
import numpy as np
import pytest

import smoothcert.certificates as certs
from smoothcert.certificates import GaussianCertificate, cache, get_certificate
from smoothcert.noises import Gaussian, L2Family, LinfMixed, LinfPure

mp.mp.dps = 50
EPS = 2.0**-52

# ============================================================================ Gaussian rounding


def _p_grid():
    """2,400+ p values in (1/2, 1): uniform, p - 1/2 down to one float step, 1 - p down to one
    float step, and the float neighbours of both ends."""
    rng = np.random.default_rng(2024)
    ps = np.concatenate(
        [
            rng.uniform(0.5, 1.0, 800),
            0.5 + np.geomspace(1e-16, 0.4999, 700),
            1.0 - np.geomspace(1.2e-16, 0.4999, 700),
            0.5 + np.arange(1, 101) * 2.0**-53,
            1.0 - np.arange(1, 101) * 2.0**-53,
            [0.6, 0.8, 0.9, 0.95, 0.99, 0.999, 0.999999, 1 - 1e-15, 0.5 + 1e-15],
        ]
    )
    return np.unique(ps[(ps > 0.5) & (ps < 1.0)])


@functools.cache
def _exact_quantiles():
    ps = _p_grid()
    return ps, [mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(p)) - 1) for p in ps]


# (sigma, d, norm): the l2 scale sigma and the Theorem 3 scale sigma / sqrt(d)
SCALES = [
    (0.25, 1, "l2"),
    (1 / 3, 5, "l2"),
    (0.12, 3072, "linf"),
    (0.5, 150528, "linf"),
    (math.pi, 7, "linf"),
]


def _exact_scale(sigma, d, norm):
    return mp.mpf(sigma) / (mp.sqrt(d) if norm == "linf" else 1)


@pytest.mark.parametrize("sigma,d,norm", SCALES)
def test_gaussian_radius_never_above_the_exact_value(sigma, d, norm):
    """The closed-form radius sigma Phi^-1(p) (/ sqrt(d) for l-inf) is never above its 50-digit
    value, over 2,400+ p including p - 1/2 and 1 - p of one float step, and within 24 * 2^-52
    relative of it (tight)."""
    ps, quantiles = _exact_quantiles()
    cert = get_certificate(Gaussian(d, sigma=sigma), norm)
    assert isinstance(cert, GaussianCertificate)
    got = cert.radius(ps)
    scale = _exact_scale(sigma, d, norm)
    exact = [scale * q for q in quantiles]
    gap = np.array([float((e - mp.mpf(float(g))) / e) for g, e in zip(got, exact, strict=True)])
    assert gap.min() >= 0, f"radius above the exact value at p = {ps[np.argmin(gap)]!r}"
    assert gap.max() <= 24 * EPS
    # scalars take the same path
    assert cert.radius(float(ps[7])) == got[7]


def test_gaussian_threshold_never_below_the_exact_value():
    """threshold(r) = Phi(r / scale) is an upper bound of its 50-digit value (the smallest p_A
    that certifies r), within 8 * 2^-52 relative, from r = 0 to where Phi rounds to 1."""
    rng = np.random.default_rng(7)
    for sigma, d, norm in SCALES[:3]:
        cert = get_certificate(Gaussian(d, sigma=sigma), norm)
        scale = _exact_scale(sigma, d, norm)
        rs = np.concatenate(
            [
                [0.0],
                float(cert.scale)
                * np.concatenate([np.geomspace(1e-17, 9.0, 400), rng.uniform(0, 4, 200)]),
            ]
        )
        got = cert.threshold(rs)
        exact = [mp.ncdf(mp.mpf(float(r)) / scale) for r in rs]
        gap = np.array([float((mp.mpf(float(g)) - e) / e) for g, e in zip(got, exact, strict=True)])
        assert gap.min() >= 0, f"threshold below the exact value at r = {rs[np.argmin(gap)]!r}"
        assert gap.max() <= 8 * EPS


def test_gaussian_value_never_above_the_exact_value():
    """value(p, r) = Phi(Phi^-1(p) - r / scale), the lower bound of the smoothed score over the
    ball, is never above its 50-digit value (down to 1e-300), and tight: within the measured
    conditioning (Phi's relative sensitivity |y| times the argument's rounding)."""
    rng = np.random.default_rng(11)
    ps = np.concatenate(
        [
            rng.uniform(0.5, 1.0, 300),
            1 - np.geomspace(1.2e-16, 0.4, 150),
            rng.uniform(0.01, 0.5, 100),
        ]
    )
    rs = rng.uniform(0.0, 3.0, ps.size) * rng.choice([0.01, 1.0, 5.0], ps.size)
    for sigma, d, norm in SCALES[1:3]:
        cert = get_certificate(Gaussian(d, sigma=sigma), norm)
        scale = _exact_scale(sigma, d, norm)
        for p, r in zip(ps, float(cert.scale) * rs, strict=True):
            got = cert.value(float(p), float(r))
            q = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(p)) - 1)
            x = mp.mpf(float(r)) / scale
            exact = mp.ncdf(q - x)
            assert mp.mpf(got) <= exact, (p, r)
            if exact > 1e-290:
                y = abs(float(q - x))
                bound = 16 + 8 * y * y + 2 * max(y, 1.0) * (32 * abs(float(q)) + 8 * float(x))
                assert float((exact - mp.mpf(got)) / exact) <= bound * EPS, (p, r)


def test_gaussian_bilateral_radius_never_above_the_exact_value():
    """The bilateral radius max(scale Phi^-1(pA), scale (Phi^-1(pA) - Phi^-1(pB)) / 2) of
    appendix D is never above its 50-digit value, and within 64 * 2^-52 of the quantiles."""
    rng = np.random.default_rng(5)
    cert = get_certificate(Gaussian(3072, sigma=0.12), "linf")
    scale = _exact_scale(0.12, 3072, "linf")
    p_a = np.concatenate([rng.uniform(0.5, 1.0, 300), 1 - np.geomspace(1.2e-16, 0.4, 100)])
    p_b = rng.uniform(1e-12, 1.0, p_a.size) * (1 - p_a)
    for a, b in zip(p_a, p_b, strict=True):
        got = cert.bilateral_radius(float(a), float(b))
        qa = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(a)) - 1)
        qb = mp.sqrt(2) * mp.erfinv(2 * mp.mpf(float(b)) - 1)
        exact = max(scale * qa, scale * (qa - qb) / 2, mp.mpf(0))
        assert mp.mpf(got) <= exact, (a, b)
        assert float(exact - mp.mpf(got)) <= 64 * EPS * float(scale * (abs(qa) + abs(qb)))


def test_gaussian_rounding_keeps_the_l2_family_k0_identical():
    """k = 0 of the l2 family is the same rounded closed form as the Gaussian (one code path)."""
    ps = _p_grid()[::10]
    a = get_certificate(Gaussian(10, sigma=0.5), "linf").radius(ps)
    b = get_certificate(L2Family(10, sigma=0.5, k=0), "linf").radius(ps)
    np.testing.assert_array_equal(a, b)


# ============================================================================ certificate cache
P_CHECK = np.linspace(0.501, 0.9999, 400)


def _only_file(folder):
    files = sorted(folder.glob("*.npz"))
    assert len(files) == 1, files
    return files[0]


def _rewrite(path, *, resign=True, **changes):
    """Edit a cache file as an attacker would: change fields, then (``resign``) recompute the
    content digest so that only the plausibility and number checks stand in the way."""
    with np.load(path) as f:
        content = {name: f[name] for name in f.files}
    content.update(changes)
    if resign:
        content["digest"] = cache.table_digest(
            json.loads(str(content["params"])),
            content["radii"],
            content["thresholds"],
            json.loads(str(content["info"])),
        )
    np.savez(path, **content)


_BUILD_QUADRATURE = certs.quadrature.quadrature_table  # the real builder (tests patch it)


@functools.cache
def _real_quadrature_table(d, k):
    return _BUILD_QUADRATURE(d, k)


@pytest.fixture
def quadrature(monkeypatch):
    """A real quadrature table (d = 10, k = 5), built once per session: ``builds`` counts the
    (re)builds the cache asks for, ``fresh`` is the certificate of a fresh build."""
    builds = []

    def build(d, k):
        builds.append((d, k))
        radii, thr, info = _real_quadrature_table(d, k)
        return radii.copy(), thr.copy(), dict(info)

    monkeypatch.setattr(certs.quadrature, "quadrature_table", build)
    noise = L2Family(10, sigma=0.5, k=5.0)
    fresh = get_certificate(noise, "l2", cache=False)
    builds.clear()
    get_certificate(noise, "l2")  # writes the cache file
    cache._MEMORY.clear()
    return noise, fresh, builds


def _load(noise, norm="l2", **kw):
    """The certificate as the cache serves it, and the warnings the load raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cert = get_certificate(noise, norm, **kw)
    return cert, [str(w.message) for w in caught]


def _assert_rebuilt(messages, builds, match):
    assert any(re.search(match, m) for m in messages), messages
    assert len(builds) == 1


def _assert_repaired(folder, fresh):
    with np.load(_only_file(folder)) as f:
        np.testing.assert_array_equal(f["thresholds"], fresh.thresholds)
        np.testing.assert_array_equal(f["radii"], fresh.radii)


def test_one_lowered_quadrature_threshold_is_rebuilt(quadrature, tmp_path):
    """A cache file with one quadrature threshold lowered (digest recomputed; the monotone
    envelope would spread it to every smaller radius) is refused and rebuilt: radii equal a
    fresh build's."""
    noise, fresh, builds = quadrature
    folder = tmp_path / "smoothcert-cache"
    path = _only_file(folder)
    thr = fresh.thresholds.copy()
    i = int(np.argmin(np.abs(thr - 0.95)))
    thr[i] = thr[i - 100]
    _rewrite(path, thresholds=thr)
    builds.clear()
    cert, messages = _load(noise)
    np.testing.assert_array_equal(cert.radius(P_CHECK), fresh.radius(P_CHECK))
    _assert_rebuilt(messages, builds, "thresholds decrease in r")
    _assert_repaired(folder, fresh)


@pytest.mark.parametrize("edit", ["scaled radii", "shifted thresholds"])
def test_consistent_quadrature_edit_is_caught_by_the_spot_check(quadrature, tmp_path, edit):
    """A quadrature cache file with radii scaled by 1.1, or with every threshold moved one grid
    step down (still monotone, digest recomputed), fails the spot-check against the exact
    engine and is rebuilt: radii equal a fresh build's."""
    noise, fresh, builds = quadrature
    folder = tmp_path / "smoothcert-cache"
    path = _only_file(folder)
    if edit == "scaled radii":
        _rewrite(path, radii=fresh.radii * 1.1)
    else:
        thr = fresh.thresholds.copy()
        thr[1:] = thr[:-1] + 1e-12
        _rewrite(path, thresholds=np.maximum.accumulate(thr))
    builds.clear()
    cert, messages = _load(noise)
    np.testing.assert_array_equal(cert.radius(P_CHECK), fresh.radius(P_CHECK))
    _assert_rebuilt(messages, builds, "below the exact engine")
    _assert_repaired(folder, fresh)


def test_naive_edit_is_caught_by_the_digest(quadrature, tmp_path):
    """A threshold lowered within its neighbours (still monotone, away from the checked radius)
    without recomputing the digest is refused ("digest mismatch") and rebuilt."""
    noise, fresh, builds = quadrature
    path = _only_file(tmp_path / "smoothcert-cache")
    thr = fresh.thresholds.copy()
    i = int(np.argmin(np.abs(thr - 0.7)))
    thr[i] = (thr[i - 1] + thr[i]) / 2
    _rewrite(path, thresholds=thr, resign=False)
    p = (thr[i] + fresh.thresholds[i]) / 2  # certified r_i with the edit, r_{i-1} without
    builds.clear()
    cert, messages = _load(noise)
    assert cert.radius(p) == fresh.radius(p)
    _assert_rebuilt(messages, builds, "digest mismatch")


def test_implausible_margin_in_info_is_rebuilt(quadrature, tmp_path):
    """A quadrature cache file whose info claims a negative exact margin (which would make the
    exact refinement and V(p, r) over-report) is refused and rebuilt with the true info."""
    noise, fresh, builds = quadrature
    path = _only_file(tmp_path / "smoothcert-cache")
    with np.load(path) as f:
        info = json.loads(str(f["info"]))
    info["exact_margin"] = -1e-3
    _rewrite(path, info=json.dumps(info))
    builds.clear()
    cert, messages = _load(noise)
    assert cert.info == fresh.info
    _assert_rebuilt(messages, builds, "implausible exact_margin")


@pytest.mark.parametrize("damage", ["truncated", "old format"])
def test_partial_or_old_format_file_is_rebuilt(quadrature, tmp_path, damage):
    """A truncated (partial) cache file, or one without a digest at the current key, is never
    read: it is rebuilt with a warning and repaired."""
    noise, fresh, builds = quadrature
    folder = tmp_path / "smoothcert-cache"
    path = _only_file(folder)
    if damage == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        match = "unreadable"
    else:
        with np.load(path) as f:
            content = {name: f[name] for name in f.files if name != "digest"}
        np.savez(path, **content)
        match = "no 'digest' field"
    builds.clear()
    cert, messages = _load(noise)
    np.testing.assert_array_equal(cert.thresholds, fresh.thresholds)
    _assert_rebuilt(messages, builds, match)
    _assert_repaired(folder, fresh)


def test_older_format_files_have_other_names():
    """Files written by the format without digest and checks (key = sha256 of the parameters
    alone) are never looked up: the format version is part of the key."""
    params = {"engine": 2, "kind": "quadrature", "dim": 10, "k": 5.0}
    old = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]
    assert cache.table_key(params) != old


def test_fresh_tables_pass_their_own_checks():
    """No false alarm: fresh quadrature and Monte Carlo tables pass the plausibility and number
    checks (the quadrature spot-check with 20 different random radii)."""
    for d, k in [(10, 5.0), (3072, 1000.0)]:
        radii, thr, info = _real_quadrature_table(d, k)
        thr = cache.monotone_envelope(thr)
        cache.check_plausible(radii, thr, info)
        check = cache.check_quadrature_table(certs.quadrature.l2_engine(d, k))
        for _ in range(20 if d == 10 else 3):
            check(radii, thr, info)
    for noise, norm in [
        (LinfPure(4, sigma=1.0, k=1.0), "linf"),
        (LinfMixed(8, sigma=1.0, k=2.0), "linf"),
    ]:
        for seed in range(3):
            params = {"samples": 20_000, "failure_prob": 1e-3, "seed": seed, "n_radii": 64}
            radii, thr, info = certs.montecarlo.monte_carlo_table(
                noise, norm, 20_000, 1e-3, seed, 64
            )
            thr = cache.monotone_envelope(thr)
            cache.check_plausible(radii, thr, info)
            cache.check_monte_carlo_table(noise, norm, params)(radii, thr, info)


MC = dict(samples=2_000, failure_prob=0.01, n_radii=8, seed=0)


@pytest.mark.parametrize("edit", ["one lowered", "scaled radii", "all lowered"])
def test_doctored_monte_carlo_table_is_rebuilt(tmp_path, monkeypatch, edit):
    """A Monte Carlo cache file with one threshold lowered, radii scaled by 3, or every
    threshold pulled halfway to 1/2 (digest recomputed) is refused and rebuilt: radii equal a
    fresh build's."""
    noise = LinfPure(4, sigma=1.0, k=1.0)
    fresh = get_certificate(noise, "linf", cache=False, **MC)
    get_certificate(noise, "linf", **MC)
    cache._MEMORY.clear()
    folder = tmp_path / "smoothcert-cache"
    path = _only_file(folder)
    thr = fresh.thresholds.copy()
    if edit == "one lowered":
        thr[6] = 0.5
        _rewrite(path, thresholds=thr)
        match = "thresholds decrease"
    elif edit == "scaled radii":
        _rewrite(path, radii=fresh.radii * 3)
        match = "pilot lower bound"
    else:
        _rewrite(path, thresholds=np.minimum(0.5 + (thr - 0.5) / 2, 1.0))
        match = "pilot lower bound"
    builds = []
    real = certs.montecarlo.monte_carlo_table
    monkeypatch.setattr(
        certs.montecarlo, "monte_carlo_table", lambda *a, **kw: builds.append(1) or real(*a, **kw)
    )
    cert, messages = _load(noise, "linf", **MC)
    ps = np.linspace(0.501, 0.999, 200)
    np.testing.assert_array_equal(cert.radius(ps), fresh.radius(ps))
    _assert_rebuilt(messages, builds, match)
    _assert_repaired(folder, fresh)


_RACER = r"""
import pathlib, sys, time
import smoothcert.certificates as certs
from smoothcert.noises import LinfPure

marker, folder, me = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
real = certs.montecarlo.monte_carlo_table

def counting(*args, **kwargs):
    with open(marker, "a") as f:
        f.write("build\n")
    time.sleep(1.0)  # a slow build: the other process arrives while it runs
    return real(*args, **kwargs)

certs.montecarlo.monte_carlo_table = counting
(folder / ("ready-" + me)).touch()
deadline = time.time() + 120
while len(list(folder.glob("ready-*"))) < 2 and time.time() < deadline:
    time.sleep(0.005)
cert = certs.get_certificate(LinfPure(4, sigma=1.0, k=1.0), "linf", samples=2000,
                             failure_prob=0.01, n_radii=8, seed=0)
print(repr(float(cert.radius(0.9))))
"""


def test_two_cold_runs_build_the_table_once(tmp_path):
    """Two processes asking at the same moment for a table that is not cached build it once
    (the second waits on the lock, then reads the finished file) and certify the same radius."""
    folder = tmp_path / "race"
    folder.mkdir()
    marker = tmp_path / "builds.txt"
    env = {
        **os.environ,
        "SMOOTHCERT_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "error::UserWarning",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(marker), str(folder), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    assert marker.read_text().splitlines() == ["build"]
    assert outs[0][0] == outs[1][0]
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
