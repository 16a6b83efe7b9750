"""smoothcert.figures and ``smoothcert figures``: every figure in quick mode, its files and the
numerical claims it plots."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from smoothcert import figures as F
from smoothcert.certificates import cache
from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """All five figures in quick mode, written once for the module (own certificate cache)."""
    out = tmp_path_factory.mktemp("figures")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMOOTHCERT_CACHE", str(tmp_path_factory.mktemp("cache")))
        cache._MEMORY.clear()
        results = {name: F.FIGURES[name](out, quick=True) for name in F.FIGURE_NAMES}
        cache._MEMORY.clear()
    return out, results


@pytest.mark.parametrize("name", F.FIGURE_NAMES)
def test_each_figure_writes_png_pdf_and_data(made, name):
    out, results = made
    res = results[name]
    assert res["name"] == name
    png, pdf, js, cs = (out / f"{name}.{ext}" for ext in ("png", "pdf", "json", "csv"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    meta = json.loads(js.read_text())
    assert meta["name"] == name and meta["caption"] and meta["settings"]["quick"] is True
    assert "series" not in meta and meta["checks"]
    with cs.open() as fh:
        rows = list(csv.reader(fh))
    assert len(rows) > 5 and all(len(r) == len(rows[0]) for r in rows)
    assert sorted(res["files"]) == sorted(str(p) for p in (png, pdf, js, cs))


def test_radius_density_normalised_with_chi_moments(made):
    res = made[1]["radius_density"]
    chk = res["checks"]
    assert chk["max_abs_integral_minus_1"] < 1e-8
    assert chk["max_abs_mean_error"] < 1e-8 and chk["max_abs_std_error"] < 1e-8
    curves = res["results"]["curves"]
    r = res["series"]["r"]
    for i, c in enumerate(curves):
        y = res["series"][f"curve{i}"]
        # the plotted curve itself integrates to ~1 on the plotting grid
        assert abs(np.trapezoid(y, r) - 1) < 2e-3
        mean, std = F.chi_moments(100, c["k"], c["sigma"])
        assert c["mean"] == pytest.approx(mean, rel=1e-12)
    a = [c for c in curves if c["panel"] == "a"]
    b = [c for c in curves if c["panel"] == "b"]
    # panel (b) matches the means of (a); k keeps the std near 0.7, sigma shrinks it
    for ca, cb in zip(a, b, strict=True):
        assert cb["mean"] == pytest.approx(ca["mean"], rel=1e-12)
    assert min(c["std"] for c in a) > 0.6
    assert b[-1]["std"] < 0.15 * a[-1]["std"]


def test_chi_density_matches_scipy():
    from scipy import stats

    r = np.linspace(0.01, 5, 50)
    got = np.exp(F.chi_log_density(r, 10, 7.5, 0.7))
    assert np.allclose(got, stats.chi.pdf(r / 0.7, 2.5) / 0.7, rtol=1e-12)


def test_theorem3_curves_coincide(made):
    res = made[1]["theorem3"]
    s = res["series"]
    for d in res["settings"]["dims"]:
        for noise in ("l2-family", "gaussian"):
            a, b = s[f"{noise}_d{d}_linf"], s[f"{noise}_d{d}_l2_over_sqrt_d"]
            assert np.max(np.abs(a - b)) <= 1e-9
            assert np.all(np.diff(a) >= 0) and a[-1] > 0
    assert res["checks"]["max_abs_diff_exact"] <= 1e-9
    # the law of ell at the vertex, sampled on full vectors, is the l2 law at sqrt(d) r
    assert res["checks"]["max_ks_vertex_vs_exact_in_dkw_bands"] < 1.0


def test_tradeoff_maximiser_is_exp_cp_and_max_is_value(made):
    res = made[1]["tradeoff"]
    for name, rr in res["results"].items():
        assert abs(rr["lambda_star_numerical"] - rr["exp_c_p"]) <= 1e-4 * rr["exp_c_p"], name
        assert abs(rr["max_bound_numerical"] - rr["certificate_value"]) <= 1e-4, name
        assert rr["max_abs_D_minus_identity"] < 1e-8
        for mc in rr["monte_carlo"]:
            assert abs(mc["D_mc"] - mc["D_quadrature"]) < 5 * mc["se"] + 1e-12
    s = res["series"]["gaussian"]
    # D is increasing and convex in lambda, 0 <= D <= lambda
    assert np.all(np.diff(s["D"]) >= -1e-15) and np.all(s["D"] <= s["lambda"] + 1e-12)


def test_theorem4_distance_grows_to_lambda(made):
    res = made[1]["theorem4"]
    dims = res["settings"]["dims"]
    for rule in res["settings"]["k_rules"]:
        for lam in res["settings"]["lambdas"]:
            pure = res["series"][f"linf-pure|{rule}|lambda={lam:g}"]
            mixed = res["series"][f"linf-mixed|{rule}|lambda={lam:g}"]
            assert pure[-1] > 0.95 and pure[-1] >= mixed[-1]
            if lam == 1:
                assert np.all(np.diff(pure) > 0), (rule, pure)
                assert pure[0] < 0.2
    # the parameters meet the theorem's condition: mode of ||z||_inf = C r
    for pts in res["results"]["points"].values():
        for p in pts:
            assert p["d"] in dims and p["sigma"] > 0
    pure0 = res["results"]["points"]["linf-pure k = 0"]
    C, r = res["settings"]["C"], res["settings"]["r"]
    for p in pure0:
        assert math.sqrt(p["d"] - 1 - p["k"]) * p["sigma"] == pytest.approx(C * r)
    mixed0 = res["results"]["points"]["linf-mixed k = 0"]
    for p in mixed0:
        assert F.mixed_linf_mode(p["d"], p["k"]) * p["sigma"] == pytest.approx(C * r)


def test_pareto_frontier_points_are_non_dominated(made):
    res = made[1]["pareto_linf"]
    grid = res["series"]["grid"]
    for fam, front in res["results"]["frontiers"].items():
        pts = [(g["A"], g["D"]) for g in grid if g["family"] == fam]
        assert front
        for f in front:
            dominated = [p for p in pts if p[0] >= f["A"] and p[1] <= f["D"]
                         and (p[0] > f["A"] or p[1] < f["D"])]
            assert not dominated, (fam, f, dominated[:3])
        # every grid point is dominated by (or on) the frontier
        for a_, d_ in pts:
            assert any(f["A"] >= a_ and f["D"] <= d_ for f in front)
    lev = res["results"]["min_D_at_A_at_least"]
    # the pure l-inf family is clearly worst at high accuracy
    assert lev["linf-pure"]["0.9"]["D"] > lev["linf-mixed"]["0.9"]["D"] + 0.05
    assert lev["linf-pure"]["0.9"]["D"] > lev["l2-family"]["0.9"]["D"] + 0.05
    cmp_ = res["results"]["frontier_comparison"]
    assert cmp_["pure_minus_best_other"]["min"] > 0.05
    for fam, curve in cmp_["frontier_D"].items():
        curve = np.asarray(curve, dtype=float)
        ok = np.isfinite(curve)
        assert ok.sum() > 10 and np.all(np.diff(curve[ok]) >= 0), fam
    # Monte Carlo distance terms of the l2 family agree with the exact quadrature value
    assert res["checks"]["l2_frontier_max_abs_mc_minus_exact_D_in_se"] < 5
    for g in grid:
        assert 0 <= g["V"] <= 1 and 0 <= g["D"] <= 1 and 0 <= g["A"] <= 1


def test_pareto_frontier_function():
    acc = [0.9, 0.9, 0.5, 0.95, 0.5, 0.2]
    dist = [0.4, 0.3, 0.3, 0.6, 0.1, 0.2]
    idx = list(F.pareto_frontier(acc, dist))
    assert idx == [3, 1, 4]


def test_frontier_distance_at_interpolates_between_frontier_points():
    acc = [0.2, 0.6, 1.0, 0.5]
    dist = [0.1, 0.3, 0.7, 0.5]  # (0.5, 0.5) is dominated by (0.6, 0.3)
    got = F.frontier_distance_at(acc, dist, [0.1, 0.4, 0.6, 0.8, 1.0])
    assert np.allclose(got, [0.1, 0.2, 0.3, 0.5, 0.7])
    assert np.isnan(F.frontier_distance_at([0.5], [0.2], [0.9])[0])


def test_seeds_make_results_reproducible():
    a = F.theorem4(quick=True, dims=(2, 10), n_samples=2000, seed=3)
    b = F.theorem4(quick=True, dims=(2, 10), n_samples=2000, seed=3)
    c = F.theorem4(quick=True, dims=(2, 10), n_samples=2000, seed=4)
    key = "linf-pure|k = 0|lambda=1"
    assert np.array_equal(a["series"][key], b["series"][key])
    assert not np.array_equal(a["series"][key], c["series"][key])
    assert a["files"] == []  # nothing written without outdir


def test_bad_inputs_raise_smoothcert_error(tmp_path):
    with pytest.raises(SmoothCertError, match="unknown figure"):
        F.make_figures(tmp_path, only=["nope"])
    with pytest.raises(SmoothCertError, match="k must satisfy"):
        F.radius_density(ks=(0, 100))
    with pytest.raises(SmoothCertError, match="p must lie"):
        F.tradeoff(p=1.5)
    with pytest.raises(SmoothCertError, match="mode"):
        F.mixed_linf_mode(3, 2.0)


def test_cli_writes_selected_figure(tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["figures", "--outdir", str(out), "--only", "radius_density", "--quick"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "radius_density.csv", "radius_density.json", "radius_density.pdf", "radius_density.png"]
    text = capsys.readouterr().out
    assert "radius_density:" in text and "total" in text


def test_cli_errors_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["figures", "--outdir", str(blocker / "sub"), "--only", "radius_density",
                 "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("smoothcert figures: error:") and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["figures", "--only", "nope"])
    assert exc.value.code == 2
