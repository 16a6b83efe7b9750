"""smoothcert.figures and ``smoothcert figures``: every figure in quick mode, its files and the
numerical claims it plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from smoothcert import figures as F
from smoothcert.certificates import cache
from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError
from smoothcert.figures import eq7_tradeoff, plotting


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
            dominated = [
                p
                for p in pts
                if p[0] >= f["A"] and p[1] <= f["D"] and (p[0] > f["A"] or p[1] < f["D"])
            ]
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
        "radius_density.csv",
        "radius_density.json",
        "radius_density.pdf",
        "radius_density.png",
    ]
    text = capsys.readouterr().out
    assert "radius_density:" in text and "total" in text


def test_cli_errors_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert (
        main(["figures", "--outdir", str(blocker / "sub"), "--only", "radius_density", "--quick"])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("smoothcert figures: error:") and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["figures", "--only", "nope"])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------- reproducibility
REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs" / "figures"


@pytest.mark.parametrize(
    "name", ["radius_density", "tradeoff", pytest.param("theorem3", marks=pytest.mark.slow)]
)  # pareto_linf, theorem4: minutes
def test_regenerated_figure_data_are_byte_identical_to_committed(tmp_path, name):
    """Regenerating a figure at its documented settings reproduces the committed NAME.json and
    NAME.csv byte for byte (the committed theorem3.json once differed at the 1e-6 level, and any
    code change that moves a figure's numbers must come with regenerated docs/figures)."""
    F.FIGURES[name](tmp_path)
    for ext in ("json", "csv"):
        got, want = (tmp_path / f"{name}.{ext}").read_bytes(), (COMMITTED / f"{name}.{ext}")
        assert got == want.read_bytes(), (
            f"{want} is not what `smoothcert figures --only {name}` writes at this code: "
            f"regenerate docs/figures"
        )


def test_figure_files_carry_no_timestamp(tmp_path):
    """Saving the same figure twice gives identical PNG and PDF bytes (no CreationDate, no
    version string in the files)."""
    res = F.radius_density(tmp_path / "a", quick=True, n_grid=50)
    plotting.save(dict(res), res["figure"], tmp_path / "b", ["x"], [])
    for ext in ("png", "pdf"):
        a, b = (tmp_path / d / f"radius_density.{ext}" for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), ext
    pdf = (tmp_path / "a" / "radius_density.pdf").read_bytes()
    assert b"CreationDate" not in pdf and b"Matplotlib" not in pdf


def _stale_quadrature_table(d: int, k: float):
    """Leave in the certificate cache the quadrature table of (d, k) as an earlier state of the
    code left it: same key, but its info has no "exact_margin" (the exact refinement then used
    the table's coarse margin, ~1e-6)."""
    from smoothcert.certificates import get_certificate
    from smoothcert.noises import L2Family

    cache._MEMORY.clear()
    get_certificate(L2Family(d, sigma=1.0, k=k), "l2")  # builds and caches the table
    (key,) = cache._MEMORY
    radii, thresholds, info = cache._MEMORY[key]
    stale = dict(info)
    assert stale.pop("exact_margin") < 1e-3 * stale["numerical_margin"]
    cache._MEMORY[key] = (radii, thresholds, stale)


def test_theorem3_does_not_depend_on_the_users_certificate_cache():
    """theorem3 gives the same radii whatever the user's certificate cache holds: a stale table
    cached under the same key (no exact_margin) moved the committed theorem3.json by ~1e-6."""
    kw = dict(quick=True, dims=(10,), n_mc=200)
    _stale_quadrature_table(10, 5.0)
    with_stale = F.theorem3(**kw)
    cache._MEMORY.clear()
    for f in cache.cache_dir().glob("*.npz"):
        f.unlink()
    fresh = F.theorem3(**kw)

    def radii(res):
        return [
            m["radius_linf"]
            for e in res["results"]["per_d"]
            for n in e["noises"]
            for m in n["radius_at_p"]
        ]

    assert radii(with_stale) == radii(fresh)


def test_figures_run_with_one_blas_thread(monkeypatch):
    """The figures' quadrature runs with one BLAS thread: a multi-threaded matrix-vector
    product moved last digits of the committed numbers with the core count."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []

    class Recording(eq7_tradeoff.L2FamilyQuadrature):
        def cdf(self, *args, **kwargs):
            seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
            return super().cdf(*args, **kwargs)

    monkeypatch.setattr(eq7_tradeoff, "L2FamilyQuadrature", Recording)
    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine
        F.tradeoff(quick=True, d=20, k=5.0, n_mc=200)
    assert seen and set(seen) == {1}


# ----------------------------------------------------------------------------- plot hygiene
def _axes(made):
    return [(name, ax) for name, res in made[1].items() for ax in res["figure"].axes]


def _display(line):
    """The line's points in display pixels, with 20 points interpolated per segment when it is
    drawn as a line (so that a legend box is tested against the whole curve)."""
    xy = np.asarray(line.get_xydata(), dtype=float)
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    if line.get_linestyle() not in ("None", "none", "", " ") and len(xy) > 1:
        t = np.linspace(0, 1, 20)[:, None, None]
        xy = (xy[:-1] + t * (xy[1:] - xy[:-1])).reshape(-1, 2)
    return line.get_transform().transform(xy)


def test_every_panel_has_axis_labels(made):
    """Every panel has a y label and every bottom panel an x label (the trade-off panels had no
    y label)."""
    for name, ax in _axes(made):
        assert ax.get_ylabel().strip(), (name, ax.get_title())
        below = [
            o
            for o in ax.figure.axes
            if o is not ax
            and o.get_position().x0 == pytest.approx(ax.get_position().x0)
            and o.get_position().y0 < ax.get_position().y0
        ]
        if not below:
            assert ax.get_xlabel().strip(), (name, ax.get_title())


def test_markers_are_not_clipped(made):
    """Every plotted marker lies wholly inside its panel (the trade-off's last Monte Carlo mark
    sat on the right edge, half clipped)."""
    for name, ax in _axes(made):
        box = ax.get_window_extent()
        dpi = ax.figure.dpi
        for line in ax.lines:
            if line.get_marker() in (None, "None", "none", "", " ") or not line.get_clip_on():
                continue
            xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
            half = (line.get_markersize() / 2 + line.get_markeredgewidth()) * dpi / 72
            for x, y in xy[np.all(np.isfinite(xy), axis=1)]:
                assert (
                    box.x0 <= x - half + 1
                    and x + half - 1 <= box.x1
                    and box.y0 <= y - half + 1
                    and y + half - 1 <= box.y1
                ), (name, ax.get_title(), line.get_label(), x, y)


def test_legends_do_not_cover_curves(made):
    """No legend box lies over a plotted curve, marker or scatter point (reference lines that
    span a whole panel excepted)."""
    for name, ax in _axes(made):
        legend = ax.get_legend()
        if legend is None:
            continue
        box = legend.get_window_extent()
        pts = [_display(line) for line in ax.lines if line.get_transform() == ax.transData]
        pts += [
            c.get_offset_transform().transform(c.get_offsets())
            for c in ax.collections
            if len(c.get_offsets()) > 1
        ]
        for xy in pts:
            inside = (
                (xy[:, 0] > box.x0 + 1)
                & (xy[:, 0] < box.x1 - 1)
                & (xy[:, 1] > box.y0 + 1)
                & (xy[:, 1] < box.y1 - 1)
            )
            assert not inside.any(), (name, ax.get_title(), xy[inside][:3])


def _visible_gaps(handle, length_pt: float) -> float:
    """Total length (points) of the gaps of a dashed legend sample not hidden by its marker."""
    offset, seq = handle._dash_pattern
    if not seq:
        return math.inf  # solid: nothing to show
    marker = 0.0
    if handle.get_marker() not in (None, "None", "none", "", " "):
        marker = handle.get_markersize() + 2 * handle.get_markeredgewidth()
    covered = (length_pt / 2 - marker / 2, length_pt / 2 + marker / 2)
    pos, gaps, i = -offset, 0.0, 0
    while pos < length_pt:
        on, off = seq[i % len(seq)], seq[(i + 1) % len(seq)]
        a, b = max(pos + on, 0.0), min(pos + on + off, length_pt)
        if b > a:
            hidden = max(0.0, min(b, covered[1]) - max(a, covered[0]))
            gaps += (b - a) - hidden
        pos, i = pos + on + off, i + 2
    return gaps


def test_legend_samples_show_their_line_style(made):
    """Each legend sample is drawn in its curve's line style with a visible dash gap (pareto_linf
    panel (b) showed A = 0.5 and A = 0.9 alike: the marker hid the only gap of the dashed
    sample)."""
    for name, ax in _axes(made):
        legend = ax.get_legend()
        if legend is None:
            continue
        length = legend.handlelength * legend.prop.get_size_in_points()
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            if not hasattr(handle, "_dash_pattern"):
                continue
            assert _visible_gaps(handle, length) >= 1.0, (name, text.get_text())
    # pareto_linf (b): the two accuracy levels are told apart by line style
    bx = made[1]["pareto_linf"]["figure"].axes[1]
    styles = {
        t.get_text(): h.get_linestyle()
        for h, t in zip(bx.get_legend().legend_handles, bx.get_legend().get_texts(), strict=True)
    }
    assert styles["A = 0.9"] == "-" and styles["A = 0.5"] == "--"
    for line in bx.lines:
        if line.get_label().endswith("A = 0.9"):
            assert line.get_linestyle() == "-"
        elif line.get_label().endswith("A = 0.5"):
            assert line.get_linestyle() == "--"


def _allowed_colours():
    from matplotlib.colors import to_hex

    from smoothcert import palette

    greys = {to_hex(str(g)) for g in np.round(np.linspace(0, 1, 101), 2)}
    return {to_hex(c) for c in palette.OKABE_ITO.values()} | greys


def test_figures_use_the_colour_blind_safe_palette(made):
    """Every line and point is drawn in the Okabe-Ito palette (or grey): tab:red against
    tab:green is the pair that red-green colour blindness cannot tell apart."""
    from matplotlib.colors import to_hex

    allowed = _allowed_colours()
    for name, ax in _axes(made):
        for line in ax.lines:
            assert to_hex(line.get_color()) in allowed, (name, line.get_label())
        for coll in ax.collections:
            for c in coll.get_facecolors():
                assert to_hex(c, keep_alpha=False) in allowed, (name, ax.get_title())


def test_sampled_figures_state_their_sample_size(made):
    """The caption of every figure computed from samples states the sample size."""
    for name in ("pareto_linf", "theorem3", "theorem4", "tradeoff"):
        res = made[1][name]
        n = (
            res["settings"].get("n_mc")
            or res["settings"].get("n_samples")
            or res["settings"]["n_samples_per_family_and_k"]
        )
        assert f"{n:,}" in res["caption"], name


# ----------------------------------------------------------------------------- analyze --plot
def test_certified_accuracy_plot_legend_outside_and_in_colour(tmp_path, monkeypatch):
    """The certified-accuracy plot of analyze and the demo keeps its legend off the curves
    (outside the axes), draws each curve in its own palette colour and line style (it was
    greyscale with the legend over the curves)."""
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure

    from smoothcert.analysis import ResultsTable, plot_certified_accuracy

    figs = []
    save = Figure.savefig

    def capture(self, *args, **kwargs):
        figs.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    rng = np.random.default_rng(0)
    curves = []
    for i in range(5):
        n = 40
        predict = np.where(rng.random(n) < 0.8, 0, 1)
        table = ResultsTable(
            idx=np.arange(n),
            label=np.zeros(n, np.int64),
            predict=predict,
            radius=rng.uniform(0, 1 + i / 4, n),
            correct=(predict == 0).astype(np.int64),
            time_seconds=np.zeros(n),
        )
        curves.append((f"noise {i}", table))
    plot_certified_accuracy(curves, tmp_path / "acc.png")
    (fig,) = figs
    (ax,) = fig.axes
    legend = ax.get_legend() or fig.legends[0]
    lbox, abox = legend.get_window_extent(), ax.get_window_extent()
    overlap_x = min(lbox.x1, abox.x1) - max(lbox.x0, abox.x0)
    overlap_y = min(lbox.y1, abox.y1) - max(lbox.y0, abox.y0)
    assert overlap_x <= 0 or overlap_y <= 0, (lbox, abox)
    assert lbox.x1 <= fig.bbox.x1 + 1 and lbox.y0 >= -1  # and inside the figure
    colours = [to_hex(line.get_color()) for line in ax.lines]
    styles = [(line.get_linestyle(), tuple(line._dash_pattern[1] or ())) for line in ax.lines]
    assert len(set(colours)) == len(curves) and len(set(styles)) == len(curves)
    assert set(colours) <= _allowed_colours()


# ----------------------------------------------------------------------------- test output
def test_pytest_output_names_the_reason_of_each_skip(tmp_path):
    """A plain ``python -m pytest`` run prints why each test was skipped (the skips that need
    ../shared said so only under -rs), and still lists the failures."""
    import subprocess
    import sys

    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n\ndef test_skips():\n    pytest.skip('shared data not found at /x')\n"
        "\n\ndef test_fails():\n    assert False\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(REPO / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            str(tmp_path / "test_x.py"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert "shared data not found at /x" in run.stdout, run.stdout
    assert "FAILED" in run.stdout and "test_fails" in run.stdout, run.stdout
