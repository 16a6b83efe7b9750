"""``docs/sequential.md`` is what ``scripts/sequential_report.py`` writes from the stored
``results/sequential/`` files, and the script runs end to end on toy sizes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "sequential"


@pytest.fixture(scope="module")
def report():
    path = ROOT / "scripts" / "sequential_report.py"
    spec = importlib.util.spec_from_file_location("_scripts_sequential_report", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_sequential_md_regenerates_byte_for_byte(report, tmp_path):
    """Guards the document against hand edits and stale numbers: docs/sequential.md equals the
    report regenerated from results/sequential/ alone (no data source, model or certificate)."""
    out = tmp_path / "sequential.md"
    assert (
        report.main(["--report-only", "--results", str(RESULTS), "--out", str(out), "--no-figures"])
        == 0
    )
    committed = (ROOT / "docs" / "sequential.md").read_text(encoding="utf-8")
    assert committed == out.read_text(encoding="utf-8"), (
        "docs/sequential.md is out of date or edited by hand: run "
        "python scripts/sequential_report.py --report-only"
    )


# rows in the published format, radii from the real files (level 0.01, N = 100,000)
FAKE = {
    "cifar10/resnet110/noise_0.25/test/sigma_0.25": [
        (0, 3, 3, 0.378, 1),
        (20, 7, -1, 0.0, 0),
        (60, 7, 7, 0.978, 1),
        (80, 1, 1, 0.941, 1),
    ],
    "cifar10/resnet110/noise_0.50/test/sigma_0.50": [
        (0, 3, 3, 0.486, 1),
        (20, 7, 7, 0.413, 1),
        (60, 7, 7, 1.96, 1),
        (80, 2, 5, 1.22, 0),
    ],
    "imagenet/resnet50/noise_0.50/test/sigma_0.50": [
        (0, 0, 394, 0.0125, 0),
        (100, 2, 2, 1.86, 1),
        (200, 4, -1, 0.0, 0),
        (300, 6, 6, 0.709, 1),
    ],
}


def _fake_data(root: Path) -> Path:
    for rel, rows in FAKE.items():
        path = root / "data" / "certify" / rel
        path.parent.mkdir(parents=True)
        lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
        lines += ["\t".join(str(v) for v in r) + "\t1.0" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_script_smoke_on_tiny_sizes(report, tmp_path):
    """Guards the experiment pipeline: on toy sizes the published and trade-off parts run, the
    inverted counts reproduce every published radius, forward passes match `samples`, and the
    document is written from what they stored."""
    data = _fake_data(tmp_path / "cohen2019")
    res, out = tmp_path / "results", tmp_path / "doc.md"
    assert (
        report.main(
            [
                "--size",
                "tiny",
                "--parts",
                "published",
                "tradeoff",
                "--data",
                str(data),
                "--results",
                str(res),
                "--out",
                str(out),
                "--no-figures",
            ]
        )
        == 0
    )
    inputs = report.read_tsv(res / "published_inputs.tsv")
    assert len(inputs) == sum(len(v) for v in FAKE.values())
    for r in inputs:
        if r["kind"] == "abstain":
            assert float(r["pA"]) == report.ABSTAIN_PA
            continue
        n_a, sigma = int(r["n_A"]), float(r["sigma"])
        lo = stats.beta.ppf(float(r["alpha_fit"]), n_a, report.PUBLISHED_N - n_a + 1)
        assert float(f"{sigma * stats.norm.ppf(lo):.3g}") == float(r["radius"])
        assert r["kind"] == ("capped" if n_a == report.PUBLISHED_N else "inverted")
    assert {r["alpha_fit"] for r in inputs if r["kind"] != "abstain"} == {"0.01"}
    runs = report.read_tsv(res / "published_runs.tsv")
    fixed = [r for r in runs if r["mode"] == "fixed"]
    assert len(fixed) == len(inputs)
    assert {int(r["samples"]) for r in fixed} == {4_100}
    adaptive = [r for r in runs if r["mode"] == "adaptive"]
    assert all(int(r["samples"]) <= 4_100 for r in adaptive)
    # a grid radius is never above what the lower bound certifies (Gaussian, sigma)
    sig = {name: s for name, _, s in report.DATASETS}
    for r in adaptive:
        if float(r["radius"]) > 0:
            assert float(r["radius"]) <= sig[r["dataset"]] * stats.norm.ppf(float(r["pA_lower"]))
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Sequential certification")
    for head in ("## Summary", "## 1. The published workload", "## 2. The trade-off"):
        assert head in text
    assert np.isfinite([float(r["samples"]) for r in report.read_tsv(res / "tradeoff.tsv")]).all()


def test_benchmark_reports_forward_passes_of_both_modes(tmp_path):
    """Guards the benchmark's forward-pass section: per p_A it reports the passes of fixed N
    (n0 + N, counted by the model) and of certify_adaptive (never more), with a mean row."""
    spec = importlib.util.spec_from_file_location(
        "_bench_run_passes", ROOT / "benchmarks" / "run.py"
    )
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    try:
        spec.loader.exec_module(bench)
        cfg = bench.make_config("tiny", "cpu")
        cfg.threads = 1
        (table,) = bench.run(cfg, log=lambda *a: None, sections=("passes",), workdir=tmp_path)
    finally:
        sys.modules.pop(spec.name, None)
    assert table.key == "passes"
    assert [row[0] for row in table.rows] == [f"{p:g}" for p in bench.PASSES_PA] + ["all (mean)"]
    fixed = [float(v.replace(",", "")) for v in table.column("passes fixed N")]
    adaptive = [float(v.replace(",", "")) for v in table.column("passes adaptive")]
    assert fixed == [cfg.n0 + cfg.passes_n] * len(fixed)
    assert all(a <= f for a, f in zip(adaptive, fixed, strict=True))
    assert min(adaptive) < cfg.n0 + cfg.passes_n / 4  # p_A = 0.45 abstains early
