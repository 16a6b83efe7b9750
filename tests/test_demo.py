"""``smoothcert demo --quick``: the whole pipeline, tiny (train, certify x4, tables, plots)."""

from __future__ import annotations

import pytest

from smoothcert.analysis import read_results
from smoothcert.cli.main import main
from smoothcert.demo import FULL, QUICK, settings

RESULT_HEADER = ("idx\tlabel\tpredict\tradius\tcorrect\ttime\tpA_lower\tpA_upper\tsamples\t"
                 "stop\tradius_exact")  # sequential certification (certify --adaptive)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    mp = pytest.MonkeyPatch()
    mp.setenv("SMOOTHCERT_CACHE", str(root / "cache"))
    out = root / "tmp"
    try:
        rc = main(["demo", "--quick", "--outdir", str(out), "--no-progress"])
    finally:
        mp.undo()
    return rc, out


def test_quick_demo_writes_results_tables_and_plots(quick_demo, capsys):
    rc, out = quick_demo
    assert rc == 0
    files = sorted((out / QUICK.results_dir).rglob("*.tsv"))
    assert [f.stem for f in files] == sorted(s.key for s in settings(QUICK))
    n_images = len(range(0, 360, QUICK.skip))
    for f in files:
        assert f.read_text().splitlines()[0] == RESULT_HEADER
        assert (f.parent / (f.name + ".config.json")).exists()
        table = read_results(f)
        assert len(table) == n_images and table.correct.sum() >= 1
    for norm in ("l2", "linf"):
        png = out / f"certified_accuracy_{norm}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tables = (out / "tables.md").read_text()
    assert sum(line.startswith("| --- |") for line in tables.splitlines()) == 2
    assert "Confidence" in tables
    ckpt = out / "models" / "digits" / "digits_cnn" / "noise_0.25" / "checkpoint.pth.tar"
    assert ckpt.exists() and (ckpt.parent / "log").exists()


def test_quick_demo_prints_tables_and_reuses_everything(quick_demo, capsys):
    rc, out = quick_demo
    assert rc == 0
    before = (out / "tables.md").read_text()
    assert main(["demo", "--quick", "--outdir", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "reusing the checkpoint" in text
    assert "Certified accuracy against l2 attacks" in text
    assert "Certified accuracy against l∞ attacks" in text
    assert "Gaussian (Thm 3)" in text and "linf-mixed" in text and "l2 family" in text
    assert "Confidence:" in text and str(out) in text
    assert "<b>" not in text  # aligned text tables on the terminal; markdown in tables.md
    assert (out / "tables.md").read_text() == before  # deterministic, resumed files
    wide = [line for line in text.splitlines() if len(line) > 100 and str(out) not in line]
    assert not wide, wide  # tables and notes fit a 100-column terminal (file paths aside)


def test_gaussian_linf_is_derived_from_the_l2_run(quick_demo):
    """The demo's Gaussian l-inf results are derived from its l2 run (Theorem 3: the same
    pA_lower, radius sigma Phi^-1(pA_lower) / sqrt(d) rounded toward zero) instead of sampling
    every input again."""
    import json
    import math

    from scipy.stats import norm

    _, out = quick_demo
    rdir = out / QUICK.results_dir / "noise_0.25"
    l2, linf = read_results(rdir / "gaussian_l2.tsv"), read_results(rdir / "gaussian_linf.tsv")
    config = json.loads((rdir / "gaussian_linf.tsv.config.json").read_text())
    assert config["norm"] == "linf" and config["derived_from"]["file"] == "gaussian_l2.tsv"
    assert (linf.idx == l2.idx).all() and (linf.predict == l2.predict).all()
    p = l2["pA_lower"].astype(float)
    exact = 0.25 * norm.ppf(p) / math.sqrt(64)
    certified = l2.predict != -1
    assert (linf.radius[~certified] == 0).all()
    assert (linf.radius[certified] <= exact[certified]).all()  # toward zero, never above
    assert (linf.radius[certified] >= exact[certified] * (1 - 1e-12)).all()


def test_full_configuration_is_meaningful():
    assert FULL.n >= 10_000 and FULL.n0 == 100 and FULL.alpha == 0.001
    assert 0 < FULL.k_l2 < 63 and 0 < FULL.k_linf < 63
    assert QUICK.epochs <= FULL.epochs and QUICK.lr == FULL.lr  # quick models: a prefix
