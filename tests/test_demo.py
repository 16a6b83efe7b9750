"""``smoothcert demo --quick``: the whole pipeline, tiny (train, certify x4, tables, plots)."""

from __future__ import annotations

import pytest

from smoothcert.analysis import read_results
from smoothcert.cli.main import main
from smoothcert.demo import FULL, QUICK, settings

RESULT_HEADER = (
    "idx\tlabel\tpredict\tradius\tcorrect\ttime\tpA_lower\tpA_upper\tsamples\t"
    "stop\tradius_exact"
)  # sequential certification (certify --adaptive)


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


def test_demo_results_do_not_depend_on_the_callers_thread_count(tmp_path, monkeypatch):
    """The demo's trained model and result files are the same whatever the caller's torch
    thread count (the demo runs with ``threads`` = 1, then restores the caller's count):
    before, the weights trained with 2 threads differed from those with 1 (reductions in
    another order), so the demo's tables depended on the machine's number of cores."""
    from dataclasses import replace

    import torch

    from smoothcert.demo import run_demo

    tiny = replace(QUICK, epochs=1, skip=180, n0=50, n=200, cert_batch=250, cert_samples=2_000)
    before = torch.get_num_threads()
    outputs = {}
    try:
        for threads in (2, 1):
            monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / f"cache{threads}"))
            torch.set_num_threads(threads)
            with open(tmp_path / f"log{threads}", "w") as log:
                res = run_demo(tmp_path / f"t{threads}", config=tiny, progress=False, out=log)
            assert torch.get_num_threads() == threads  # the caller's setting is restored
            rows = {
                key: [
                    line.split("\t")[:5] + line.split("\t")[6:]  # all but the time
                    for line in path.read_text().splitlines()
                ]
                for key, path in res.results.items()
            }
            outputs[threads] = (
                res.checkpoints[0.25].read_bytes(),
                rows,
                res.tables_file.read_text(),
            )
    finally:
        torch.set_num_threads(before)
    assert outputs[2][0] == outputs[1][0]  # bit-identical weights
    assert outputs[2][1:] == outputs[1][1:]


def test_demo_refuses_a_bad_thread_count(tmp_path):
    """A demo configuration with threads < 1 (or not an integer) ends in a one-line
    SmoothCertError before anything is trained."""
    from dataclasses import replace

    from smoothcert.demo import run_demo
    from smoothcert.errors import SmoothCertError

    for bad in (0, 1.5, True):
        with pytest.raises(SmoothCertError, match="threads must be a positive integer"):
            run_demo(tmp_path / "out", config=replace(QUICK, threads=bad))
    assert not (tmp_path / "out").exists()
