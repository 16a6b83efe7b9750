"""``docs/results.md`` is what ``scripts/results_report.py`` generates from the stored results,
its numbers come from those files, and ``scripts/paper_experiments.py --dry-run`` prints
commands the real ``smoothcert`` parser accepts."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from smoothcert.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report():
    return _load("results_report")


@pytest.fixture(scope="module")
def paper():
    return _load("paper_experiments")


@pytest.fixture(scope="module")
def generated(report, tmp_path_factory):
    """The document regenerated from results/digits into a temporary folder (no figures)."""
    out = tmp_path_factory.mktemp("results_doc") / "results.md"
    assert report.main(["--results", str(report.RESULTS), "--out", str(out), "--no-figures"]) == 0
    return out.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- the document
def test_results_md_is_exactly_the_generated_document(generated):
    committed = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert committed == generated, (
        "docs/results.md is out of date or edited by hand: run python scripts/results_report.py"
    )


def test_every_number_of_the_document_is_recorded_by_the_generator(report, generated):
    """Every numeric token of the text went through Doc.num / Doc.data_text, i.e. was computed
    from (or copied out of) the stored files."""
    doc = report.build(report.RESULTS, None)
    assert doc.text() == generated
    tokens = report.NUMBER_RE.findall(generated)
    assert len(tokens) > 500
    assert sorted(set(tokens) - doc.numbers) == []


#: numbers the generator's literal text may contain: references and formulas, not results
_REFERENCE = re.compile(
    r"Tables? [1-4]|Figure 5|Theorems? [35]( and 5)?|section 5|eq\. \([589]\)|CIFAR-10|"
    r"1/2|1/N|\(d-1\)/\(d-1-k\)|σ0²|\bN0\b|\bl2\b|σ0|sigma0|k_l2\w*|[CFG]_l2|l2[-_]\w+|"
    r"fig5_\w+|\w+_255|>= 0\.5|\d-core|N\(0, |`1/|× 1/|1 − p_max|exit 1|radius 0|"
    r"(below|above) 1 |digits32|\bdigits32_\w+|\w+_l2\.tsv|sha256|--part \w+"
)


def _literal_strings(path: Path):
    """(line, text) of every string literal of a module but docstrings and format specs."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            skip.add(id(body[0].value))
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            skip.update(id(n) for n in ast.walk(node.format_spec))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_the_generator_types_no_result_by_hand(report):
    """No digit in the generator's literal text but references (Table 1, Theorem 3, ...),
    number formats ('.3f') and plot styling: every number of the prose is computed."""
    allowed_values = {report.NUMBER_RE.pattern, "0.0", "0.85"}  # regex; plot grey levels
    bad = []
    for line, text in _literal_strings(SCRIPTS / "results_report.py"):
        if text in allowed_values or re.fullmatch(r"[+]?\.\d[fge]|,", text):
            continue
        rest = _REFERENCE.sub("", text)
        if re.search(r"\d", rest):
            bad.append((line, text))
    assert bad == []


def test_figures_linked_from_the_document_exist(generated):
    links = re.findall(r"\]\((figures/[^)]+)\)", generated)
    assert {Path(link).suffix for link in links} == {".png", ".pdf"}
    missing = [link for link in links if not (ROOT / "docs" / link).is_file()]
    assert missing == []


def test_check_mode_accepts_the_committed_document(report, capsys):
    assert report.main(["--check"]) == 0


# ----------------------------------------------------------------------------- paper script
def _dry_run(paper, capsys, argv):
    assert paper.main(["--dry-run", *argv]) == 0
    lines = capsys.readouterr().out.splitlines()
    cmds = [shlex.split(line) for line in lines if line and not line.startswith("#")]
    assert cmds and all(c[1:3] == ["-m", "smoothcert"] for c in cmds)
    parser = build_parser()
    return [(c, parser.parse_args(c[3:])) for c in cmds]


def test_paper_dry_run_prints_commands_the_real_cli_accepts(paper, capsys, tmp_path):
    salman = tmp_path / "salman"
    for sub in (
        "PGD_1step/eps_64/cifar10/resnet110/noise_0.25",
        "PGD_1step/eps_64/cifar10/resnet110/noise_0.50",
    ):
        (salman / sub).mkdir(parents=True)
        (salman / sub / "checkpoint.pth.tar").write_bytes(b"")
    argv = [
        "--cohen-cifar",
        str(tmp_path / "cohen_cifar"),
        "--cohen-imagenet",
        str(tmp_path / "cohen_imagenet"),
        "--salman-cifar",
        str(salman),
        "--cifar-data",
        str(tmp_path / "cifar"),
        "--imagenet-data",
        str(tmp_path / "imnet"),
        "--outdir",
        str(tmp_path / "out"),
    ]
    parsed = _dry_run(paper, capsys, argv)
    certify = [(c, a) for c, a in parsed if a.command == "certify"]
    analyze = [(c, a) for c, a in parsed if a.command == "analyze"]
    # Tables 1, 2, 4 on Cohen's models, Table 3 on the two Salman models, Figure 5 on Cohen's
    assert len(certify) == 8 + 6 + 4 * 4 + 2 * 2 + 4 * 2
    outfiles = set()
    for cmd, a in certify:
        outfiles.add(a.outfile)
        assert (a.N, a.N0, a.alpha, a.seed) == (100_000, 100, 0.001, 0)
        assert Path(a.checkpoint).name == "checkpoint.pth.tar"
        sigma0 = float(re.fullmatch(r"noise_(.*)", Path(a.checkpoint).parent.name)[1])
        assert a.sigma0 == sigma0 and a.sigma is None
        stem = Path(a.outfile).stem
        if a.noise == "gaussian":
            assert stem == f"gaussian_{a.norm}" and a.k == 0
        else:
            assert stem == f"{a.noise}_k{a.k:g}_{a.norm}"
        if a.dataset == "cifar10":
            assert (a.skip, a.data_dir) == (20, str(tmp_path / "cifar"))
            assert (a.noise, a.k) in {
                ("gaussian", 0),
                ("l2-family", 500),
                ("l2-family", 100),
                ("l2-family", 200),
                ("l2-family", 1000),
                ("l2-family", 2000),
                ("linf-mixed", 250),
            }
        else:
            assert (a.dataset, a.skip, a.norm) == ("imagenet", 100, "l2")
            assert (a.noise, a.k) in {("gaussian", 0), ("l2-family", 50_000)}
        if a.noise == "linf-mixed":
            assert (a.norm, a.cert_samples, a.cert_failure_prob) == ("linf", 1_000_000, 0.001)
            assert "--cert-samples" in cmd
    assert len(outfiles) == len(certify)
    # every analyze table reads certify outputs, with the envelope row where it is a table
    assert analyze
    for _cmd, a in analyze:
        files = [f.split("=", 1)[1] if "=" in f else f for f in a.files]
        assert set(files) <= outfiles
        assert a.output
    assert sum(a.envelope for _, a in analyze) == len(analyze) - 4  # not the 4 Figure 5 plots
    assert sum(a.plot is not None for _, a in analyze) == 4


def test_paper_dry_run_defaults_and_options(paper, capsys, tmp_path):
    parsed = _dry_run(
        paper,
        capsys,
        [
            "--experiments",
            "table1",
            "--N",
            "1000",
            "--device",
            "cpu",
            "--batch",
            "64",
            "--max",
            "100",
            "--outdir",
            str(tmp_path),
        ],
    )
    certify = [a for _, a in parsed if a.command == "certify"]
    assert len(certify) == 8
    assert {(a.N, a.device, a.batch, a.max) for a in certify} == {(1000, "cpu", 64, 100)}
    assert {a.sigma0 for a in certify} == {0.12, 0.25, 0.5, 1.0}
    # the default checkpoint paths: Cohen et al.'s release layout
    assert {Path(a.checkpoint).parent.name for a in certify} == {
        "noise_0.12",
        "noise_0.25",
        "noise_0.50",
        "noise_1.00",
    }


def test_paper_summary_tables_from_results_files(paper, tmp_path):
    """The paper layouts from (made-up) results files of the planned runs."""
    args = paper.parse_args(["--outdir", str(tmp_path), "--experiments", "table1", "table3"])
    certs = paper.plan(args)
    header = "idx\tlabel\tpredict\tradius\tcorrect\ttime\tpA_lower"
    for i, c in enumerate(certs):
        Path(c.outfile).parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{j}\t1\t1\t{0.01 * (i + j):.3}\t1\t0:00:01.0\t0.9" for j in range(4)]
        Path(c.outfile).write_text("\n".join([header, *rows]) + "\n")
    text = paper.summary_tables(args, certs)
    assert "## Table 1: CIFAR-10, l2" in text and "## Table 3: CIFAR-10, l-inf" in text
    assert "r = 2/255 |" in text and "l2-family k = 500 (best over 4 classifiers)" in text


# ----------------------------------------------------------------------------- issue 14
RESULTS = ROOT / "results"


def _manifest(name: str) -> dict:
    import json

    path = RESULTS / name / "experiment.json"
    if not path.exists():
        pytest.skip(f"{path} not stored")
    return json.loads(path.read_text())


def _config(outfile: str) -> dict:
    import json

    return json.loads((ROOT / (outfile + ".config.json")).read_text())


def _existing(runs: list[dict]) -> list[dict]:
    return [r for r in runs if (ROOT / r["outfile"]).exists()]


def test_matched_and_crossed_runs_are_told_apart_by_their_files():
    """Every issue-14 results file records the noise its checkpoint was trained with
    (``train_noise``), and it is the training noise the experiment planned (matched: the
    certification noise; crossed: the Gaussian), so the report never mixes the two."""
    m = _manifest("digits")
    runs = _existing(m.get("matched_runs", []) + m.get("validation_runs", []))
    runs += _existing(_manifest("digits32")["runs"]) if (RESULTS / "digits32").exists() else []
    assert runs
    for r in runs:
        tn = _config(r["outfile"])["train_noise"]
        assert (tn["noise"], float(tn["k"])) == (r["train_noise"], r["train_k"]), r["key"]
        assert ("trained_" in r["key"]) == (r["train_noise"] != "gaussian"), r["key"]
        assert (r["train_noise"] == r["noise"]) or r["train_noise"] == "gaussian"


def _all_runs(name: str) -> list[dict]:
    m = _manifest(name)
    return _existing(m["runs"] + m.get("matched_runs", []) + m.get("validation_runs", []))


@pytest.mark.parametrize("name", ["digits", "digits32"])
def test_validation_images_are_disjoint_from_the_test_images(name):
    """The noise is chosen on images the reported test numbers never use."""
    from smoothcert.analysis import read_results

    runs = _all_runs(name)
    if not any(r["key"].startswith("validation/") for r in runs):
        pytest.skip("no validation runs stored")
    val = {
        int(i)
        for r in runs
        if r["key"].startswith("validation/")
        for i in read_results(ROOT / r["outfile"]).idx
    }
    test = {
        int(i)
        for r in runs
        if not r["key"].startswith("validation/")
        for i in read_results(ROOT / r["outfile"]).idx
    }
    assert val and test and not (val & test)


@pytest.mark.parametrize("name", ["digits", "digits32"])
def test_derived_gaussian_linf_radii_never_exceed_theorem_3(name):
    """The Gaussian l-inf rows derived from the l2 rows keep pA_lower and predictions and
    never claim more than sigma Phi^-1(pA_lower) / sqrt(d) (rounded toward zero)."""
    import numpy as np
    from scipy.stats import norm

    from smoothcert.analysis import read_results

    m = _manifest(name)
    derived = [r for r in _all_runs(name) if r.get("derived_from")]
    if not derived:
        pytest.skip("no derived runs stored")
    dim = m["config"]["dim"]
    for r in derived:
        li = read_results(ROOT / r["outfile"])
        l2 = read_results(ROOT / Path(r["outfile"]).with_name(r["derived_from"] + ".tsv"))
        assert (li["pA_lower"] == l2["pA_lower"]).all() and (li.predict == l2.predict).all()
        bound = r["sigma0"] * norm.ppf(np.asarray(li["pA_lower"], float)) / np.sqrt(dim)
        ok = li.predict == -1
        assert (li.radius[~ok] <= bound[~ok]).all()
        assert (li.radius[~ok] >= bound[~ok] * (1 - 1e-2)).all()  # 3 significant digits
        assert _config(r["outfile"])["derived_from"]["file"] == r["derived_from"] + ".tsv"


@pytest.mark.parametrize("name", ["digits", "digits32"])
def test_stored_selection_is_what_select_chooses_from_the_files(name):
    """selection.json is reproduced by smoothcert.selection.select on the stored validation
    files, and the test number it reports is that of the chosen configuration's partner."""
    import json

    from smoothcert.selection import select

    path = RESULTS / name / "selection.json"
    if not path.exists():
        pytest.skip("selection not stored")
    stored = json.loads(path.read_text())
    runs = {r["key"]: r for r in _all_runs(name)}
    assert stored["targets"]
    for t in stored["targets"]:
        for which in ("all", "gaussian"):
            e = t[which]
            files = e["selection"]["validation"]["scores"]
            cands = [f["file"] for f in files]
            test_files = [f.replace("validation/", "", 1) for f in cands]
            kw = {"radius": t["value"]} if t["kind"] == "radius" else {"radii": tuple(t["value"])}
            sel = select(
                [ROOT / f for f in cands],
                test_files=[ROOT / f for f in test_files],
                confidence=stored["confidence"],
                **kw,
            )
            chosen = ROOT / runs[e["chosen"]]["outfile"]
            assert Path(sel.chosen.path).resolve() == chosen.resolve()
            assert sel.test_score == e["test_score"]
            assert e["test_file"] == runs[e["chosen"].removeprefix("validation/")]["outfile"]
            if which == "gaussian":
                assert all("gaussian" in Path(f).name for f in cands)


@pytest.mark.parametrize("name", ["digits", "digits32"])
def test_no_stored_radius_exceeds_its_exact_value(name):
    """No radius cell of a stored results file is above the exact radius recorded next to it
    (three significant digits rounded toward zero), so no table of the report counts an image
    at a radius it does not reach."""
    import numpy as np

    runs = _all_runs(name)
    checked = 0
    for r in runs:
        lines = (ROOT / r["outfile"]).read_text().splitlines()
        head = lines[0].split("\t")
        if "radius_exact" not in head:
            continue
        i, j = head.index("radius"), head.index("radius_exact")
        cells = np.array([[float(ln.split("\t")[i]), float(ln.split("\t")[j])] for ln in lines[1:]])
        assert (cells[:, 0] <= cells[:, 1]).all(), r["outfile"]
        pos = cells[:, 1] > 0
        unit = 10.0 ** (np.floor(np.log10(cells[pos, 1])) - 2)  # third significant digit
        assert (cells[pos, 1] - cells[pos, 0] < unit * (1 + 1e-9)).all(), r["outfile"]
        checked += 1
    assert checked
