"""Smoke test of benchmarks/run.py: every section runs on tiny sizes and produces the rows and
columns the report expects. No timing assertions (the machine may be shared)."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "smoothcert_bench_run", ROOT / "benchmarks" / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def tables(bench, tmp_path_factory):
    cfg = bench.make_config("tiny", "cpu")
    cfg.threads = 1
    threads = torch.get_num_threads()
    out = bench.run(cfg, log=lambda *a: None, workdir=tmp_path_factory.mktemp("bench"))
    assert torch.get_num_threads() == threads  # restored
    return cfg, {t.key: t for t in out}


VERDICTS = {"PASS", "FAIL", "—"}


def test_report_order_and_verdict_column(tables):
    _, by_key = tables
    assert list(by_key) == ["certify", "samplers", "certificates", "memory"]
    for t in by_key.values():
        assert t.rows, t.key
        assert all(len(row) == len(t.columns) for row in t.rows), t.key
        assert {row[-1] for row in t.rows} <= VERDICTS, t.key


def test_certify_rows(bench, tables):
    _, by_key = tables
    t = by_key["certify"]
    assert t.column("noise") == list(bench.NOISES)
    for col in (
        "sampling",
        "forward",
        "certificate lookup",
        "counting & other",
        "wall / input",
        "CPU vs Gaussian",
        "forward-equalised vs Gaussian",
    ):
        assert col in t.columns
    assert t.rows[0][-1] == "—"  # the Gaussian is the reference
    assert t.rows[0][t.columns.index("wall vs Gaussian")] == "1.00×"


def test_sampler_rows(bench, tables):
    cfg, by_key = tables
    t = by_key["samplers"]
    expected = [(f"{d:,}", name) for d, _ in cfg.sampler_sizes for name in bench.NOISES]
    assert list(zip(t.column("d"), t.column("noise"), strict=True)) == expected
    targets = dict(zip(t.column("noise"), t.column("target"), strict=False))
    assert targets["l2-family"] == "≥ 0.9×" and targets["linf-mixed"] == "≥ 0.3×"


def test_certificate_rows(bench, tables):
    cfg, by_key = tables
    t = by_key["certificates"]
    expected = [(f"{d:,}", name) for d in cfg.cert_dims for name in bench.NOISES]
    assert list(zip(t.column("d"), t.column("noise"), strict=True)) == expected
    methods = dict(zip(t.column("noise"), t.column("method"), strict=False))
    assert methods == {
        "gaussian": "closed-form",
        "l2-family": "quadrature",
        "linf-mixed": "monte-carlo",
        "linf-pure": "monte-carlo",
    }


def test_memory_rows(tables):
    cfg, by_key = tables
    t = by_key["memory"]
    expected = [(name, f"{n:,}") for name in cfg.memory_noises for n in cfg.memory_ns]
    assert list(zip(t.column("noise"), t.column("N"), strict=True)) == expected
    assert t.rows[-1][-1] in {"PASS", "FAIL"}  # the large-N row is judged


def test_direct_loop_without_smooth(bench, tmp_path):
    cfg = bench.make_config("tiny", "cpu")
    cfg.threads, cfg.use_smooth = 1, False
    (t,) = bench.run(cfg, log=lambda *a: None, sections=("certify",), workdir=tmp_path)
    assert t.column("noise") == list(bench.NOISES)
    assert "re-implemented" in " ".join(t.notes)


def test_render_has_machine_command_and_tables(bench, tables):
    cfg, by_key = tables
    text = bench.render(
        list(by_key.values()),
        bench.machine_info("cpu"),
        "python benchmarks/run.py --quick",
        cfg,
        "2000-01-01 00:00 UTC",
        1.0,
    )
    assert "python benchmarks/run.py --quick" in text
    assert "| CPU |" in text and "| torch |" in text
    for t in by_key.values():
        assert f"### {t.title}" in text


def test_summary_names_failed_rows(bench):
    cfg = bench.make_config("tiny", "cpu")
    t = bench.Table(
        "samplers",
        "2. Sampler throughput",
        ["d", "noise", "x", "PASS/FAIL"],
        [["3,072", "l2-family", "1", "FAIL"], ["64", "gaussian", "1", "—"]],
    )
    c = bench.Table(
        "certify",
        "1. Per-input",
        ["noise", "x", "≤ 1.05×"],
        [["l2-family", "1", "FAIL"]],
        label_cols=1,
    )
    text = bench.render([c, t], {"CPU": "x"}, "cmd", cfg, "now", 1.0)
    assert "1 FAIL (d = 3,072 l2-family)" in text
    assert "1 FAIL (l2-family)" in text
