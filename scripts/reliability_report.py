"""Write docs/reliability.md from a run of the reliability tests and larger experiments.

    python scripts/reliability_report.py [--output docs/reliability.md] [--quick]

1. Runs ``tests/test_reliability.py`` and ``tests/test_interrupt.py`` with pytest (the fuzzing,
   bad-input, extremes, coverage and kill tests exactly as CI runs them) and records every
   test's outcome and the number of cases each experiment checked.
2. Reruns the experiments of those files with larger sizes: numerical extremes, coverage over
   more seeds, and more SIGKILL plans for ``certify`` and ``train``.
3. Writes the markdown report: what was tried, how many cases, the result, the regimes where a
   certificate degrades to 0 or plateaus, and any test still marked as a known bug (xfail).
4. Hardening (issue 11): runs the regression tests of ``HARDENING_TESTS`` (files not present are
   skipped) in the same pytest run, lists each with the first sentence of its docstring (what it
   guards), and reports the stored mutation-testing results of ``results/mutation/`` (written
   by ``scripts/mutation_test.py``, which is not run here: it takes hours).

Every number in the report comes from this run. Certificates are built in a temporary cache,
never the user's. ``--quick`` shrinks step 2 (a smoke run, for checking the script).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import importlib
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_reliability.py", "tests/test_interrupt.py"]
# regression tests of issue 11 (hardening); a file not present yet is skipped
HARDENING_TESTS = [
    "tests/test_untrusted_files.py",
    "tests/test_results_integrity.py",
    "tests/test_certificate_trust.py",
    "tests/test_certificate_mutants.py",
    "tests/test_noise_training_mutants.py",
]
MUTATION = ROOT / "results" / "mutation"


class Recorder:
    """pytest plugin: outcome, duration and xfail reason of every test."""

    def __init__(self):
        self.results: dict[str, dict] = {}
        self.docs: dict[str, str] = {}  #: test function name -> first paragraph of its docstring

    def pytest_collection_modifyitems(self, items):
        for item in items:
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            self.docs[item.nodeid.split("[")[0]] = " ".join(doc.split("\n\n")[0].split())

    def pytest_runtest_logreport(self, report):
        entry = self.results.setdefault(
            report.nodeid, {"outcome": "passed", "duration": 0.0, "reason": ""}
        )
        entry["duration"] += report.duration
        if report.when == "call" or report.outcome != "passed":
            if hasattr(report, "wasxfail"):
                entry["outcome"] = "xpassed" if report.outcome == "passed" else "xfailed"
                entry["reason"] = report.wasxfail
            elif report.outcome != "passed" or report.when == "call":
                entry["outcome"] = (
                    report.outcome
                    if report.when == "call"
                    else ("error" if report.outcome == "failed" else report.outcome)
                )


def run_tests() -> tuple[Recorder, float, int]:
    import pytest

    rec = Recorder()
    start = time.perf_counter()
    status = pytest.main(
        ["-q", "-p", "no:cacheprovider", *TESTS, *present_hardening_tests()], plugins=[rec]
    )
    return rec, time.perf_counter() - start, int(status)


def present_hardening_tests() -> list[str]:
    return [f for f in HARDENING_TESTS if (ROOT / f).exists()]


def first_sentence(text: str) -> str:
    """The first sentence of a docstring paragraph (up to a full stop followed by a capital)."""
    m = re.match(r"(.+?[.!?])(?=\s+[A-Z(`]|\s*$)", text)
    return (m.group(1) if m else text).strip()


def test_counts_by_function(
    rec: Recorder, files=None
) -> list[tuple[str, collections.Counter, float]]:
    groups: dict[str, collections.Counter] = {}
    seconds: dict[str, float] = collections.defaultdict(float)
    for nodeid, entry in rec.results.items():
        if files is not None and nodeid.split("::")[0] not in files:
            continue
        name = nodeid.split("[")[0]
        groups.setdefault(name, collections.Counter())[entry["outcome"]] += 1
        seconds[name] += entry["duration"]
    return [(name, groups[name], seconds[name]) for name in groups]


def load_test_module(name: str):
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def fmt_outcomes(counter: collections.Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counter.items()))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def triage_of(survivor: dict, triage: dict) -> dict:
    """The class of a surviving mutant: by name (``mutants``), else by the first of ``rules``
    whose regexes match (``old`` on the original line, ``new`` / ``new_not`` on the mutated
    one)."""
    key = survivor.get("key", survivor.get("mutant"))
    if key in triage.get("mutants", {}):
        return triage["mutants"][key]
    for rule in triage.get("rules", []):
        if (
            re.search(rule.get("old", ""), survivor["old"])
            and re.search(rule.get("new", ""), survivor["new"])
            and not ("new_not" in rule and re.search(rule["new_not"], survivor["new"]))
        ):
            return rule
    return {}


#: the groups of scripts/mutation_test.py
MUTATION_GROUPS = ("noises", "certificates", "smooth")


def mutation_section() -> list[str]:
    """The stored results of scripts/mutation_test.py (results/mutation/), as markdown."""
    L = ["", "### Mutation testing", ""]
    summary = _read_json(MUTATION / "summary.json")
    if not summary or not summary.get("groups"):
        return L + [
            "No stored results (run `python scripts/mutation_test.py`; it writes "
            "`results/mutation/`)."
        ]
    triage = _read_json(MUTATION / "triage.json") or {}
    L += [
        "Stored results of `python scripts/mutation_test.py` (mutmut; each group is run "
        "with a fast selection of the tests relevant to it, not re-run by this script). "
        "Score = mutants detected (killed or timed out) / (detected + survived + no test). "
        f"Overall: {summary['detected']} detected, {summary['undetected']} undetected, "
        f"score {summary['score']}.",
        "",
        "| group | code | tests | mutants | detected | undetected | score | commit | date |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    groups = {g: _read_json(MUTATION / f"{g}.json") for g in summary["groups"]}
    for g, data in groups.items():
        if not data:
            continue
        tests = ", ".join(f"`{Path(t).name}`" for t in data["tests"])
        commit = data["commit"] + (" (+ local changes)" if data.get("dirty") else "")
        L.append(
            f"| {g} | `{data['mutated']}` | {tests} | {data['mutants']} | "
            f"{data['detected']} | {data['undetected']} | {data['score']} | {commit} | "
            f"{data['date']} |"
        )
    missing = [g for g in MUTATION_GROUPS if not groups.get(g)]
    if missing:
        L += [
            "",
            "Not run yet (no stored results): "
            + ", ".join(f"`{g}`" for g in missing)
            + ". The score above covers the groups listed only.",
        ]
    no_tests = {
        g: d["counts"].get("no tests", 0)
        for g, d in groups.items()
        if d and d.get("counts", {}).get("no tests")
    }
    if no_tests:
        L += [
            "",
            "Mutants no selected test reached ('no tests', counted as undetected): "
            + ", ".join(f"{n} in `{g}`" for g, n in no_tests.items())
            + ".",
        ]
    desel = [(g, t) for g, d in groups.items() if d for t in d["deselected_failing_unmutated"]]
    if desel:
        L += [
            "",
            "Tests deselected because they failed on the unmutated tree at the time of "
            "the run: " + ", ".join(f"`{t}` ({g})" for g, t in desel) + ".",
        ]
    survivors = [s for d in groups.values() if d for s in d["survivors"]]
    L += [
        "",
        f"Surviving mutants ({len(survivors)}); class from `results/mutation/triage.json`: "
        "**radius** = could enlarge a certified radius, harmless / equivalent otherwise, "
        "untriaged when not classified yet:",
        "",
    ]
    classes = collections.Counter(triage_of(s, triage).get("class", "untriaged") for s in survivors)
    if survivors:
        L += [
            "By class: " + ", ".join(f"{c} {n}" for c, n in sorted(classes.items())) + ".",
            "",
            "| where | function | mutation | class | note |",
            "| --- | --- | --- | --- | --- |",
        ]
    for s in survivors:
        t = triage_of(s, triage)
        mutation = f"`{s['old']}` → `{s['new']}`".replace("|", "\\|")
        note = str(t.get("note", "")).replace("|", "\\|")
        L.append(
            f"| `{s['file'].removeprefix('src/')}:{s['line']}` | `{s['function']}` | "
            f"{mutation} | {t.get('class', 'untriaged')} | {note} |"
        )
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--output", default=str(ROOT / "docs" / "reliability.md"))
    ap.add_argument("--quick", action="store_true", help="small sizes for step 2 (smoke run)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    cache = tempfile.mkdtemp(prefix="smoothcert-reliability-")
    os.environ["SMOOTHCERT_CACHE"] = cache
    os.environ.setdefault("MPLBACKEND", "Agg")
    t0 = time.perf_counter()

    # ---- 1. the tests as CI runs them
    rec, test_s, status = run_tests()
    groups = test_counts_by_function(rec, files=TESTS)
    total = collections.Counter(
        e["outcome"] for nid, e in rec.results.items() if nid.split("::")[0] in TESTS
    )
    hardening = present_hardening_tests()
    # cases the tests checked (hypothesis examples included), from the module pytest imported
    tested = sys.modules.get("test_reliability")
    step1_counts = dict(tested.COUNTS) if tested is not None else {}

    # ---- 2. larger experiments (a fresh import: its own case counters)
    import torch

    torch.set_num_threads(1)
    rel = load_test_module("test_reliability")
    kill = load_test_module("test_interrupt")
    rel.COUNTS.clear()
    quick = args.quick
    extremes = [
        rel.gaussian_extremes(),
        rel.l2_family_extremes(),
        rel.l2_k0_quadrature_vs_closed_form(),
        rel.monte_carlo_extremes(),
    ]
    smooth_seeds = 100 if quick else 1000
    table_seeds = 20 if quick else 200
    coverage = [
        rel.smooth_coverage(f, seeds=smooth_seeds, k=k)
        for f, k in [
            ("gaussian-linear", 0.0),
            ("gaussian", 0.0),
            ("l2-family", 5.0),
            ("linf-mixed", 5.0),
            ("linf-pure", 5.0),
        ]
    ]
    coverage += [
        rel.table_coverage(case, seeds=table_seeds)
        for case in ["gaussian-l2", "l2-family-l2", "linf-mixed-k0", "linf-mixed", "linf-pure"]
    ]
    kill_seeds = [kill.KILL_SEED] if quick else [kill.KILL_SEED + i for i in range(4)]
    kills = []
    with tempfile.TemporaryDirectory(prefix="smoothcert-kill-") as tmp:
        for i, seed in enumerate(kill_seeds):
            for what, fn in (
                ("certify", kill.certify_kill_experiment),
                ("train", kill.train_kill_experiment),
            ):
                root = Path(tmp) / f"{what}-{i}"
                root.mkdir()
                kills.append((what, seed, fn(root, seed=seed)))
    wall = time.perf_counter() - t0

    # ---- 3. the report
    cmd = "python scripts/reliability_report.py" + (" --quick" if quick else "")
    L = [
        "# Reliability report",
        "",
        f"Generated by `{cmd}` on {dt.date.today().isoformat()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}; {wall / 60:.1f} min). Do not edit by hand: rerun the "
        "command. The tests are `tests/test_reliability.py` and `tests/test_interrupt.py` "
        "(sections 1-4) and the hardening tests of issue 11 (section 5); their docstrings "
        "say what each experiment checks.",
        "",
        "## 1. The tests, as CI runs them",
        "",
        f"`python -m pytest {' '.join(TESTS + hardening)}`: exit status {status} "
        f"(all files), {fmt_outcomes(total)} in the first two ({test_s:.0f} s for all; the "
        "others are in section 5).",
        "",
        "| test | outcome | seconds |",
        "| --- | --- | ---: |",
    ]
    for name, counter, secs in groups:
        L.append(f"| `{name.split('::')[-1]}` | {fmt_outcomes(counter)} | {secs:.1f} |")
    if step1_counts:
        L += [
            "",
            "Cases checked inside these tests (each hypothesis example, bad call, CLI run, "
            "extremes check or coverage seed counts once): "
            + ", ".join(f"{k} {v}" for k, v in sorted(step1_counts.items()))
            + ".",
        ]
    fixed = [(name, doc) for name, doc in rec.docs.items() if doc.startswith("Bug found")]
    L += ["", f"Bugs these experiments found, now fixed ({len(fixed)} regression tests):", ""]
    L += [f"- `{name.split('::')[-1]}`: {doc.removeprefix('Bug found: ')}" for name, doc in fixed]
    known = [(nid, e["reason"]) for nid, e in rec.results.items() if e["outcome"] == "xfailed"]
    L += ["", "Known bugs still open (strict xfail tests): " + ("none." if not known else ""), ""]
    L += [f"- `{nid.split('::')[-1]}`: {reason}" for nid, reason in known]

    L += [
        "",
        "## 2. Numerical extremes",
        "",
        "d up to 150528, k up to d - 1, sigma in {1e-3, 1, 1e3}, p from 1/2 + 1e-9 to "
        "1 - 1e-12 (19 values). Each check is one (certificate, sigma, property) triple: "
        "finite, monotone in p, linear in sigma, never above the exact value (Cohen's closed "
        "form evaluated with 40-digit arithmetic; for the l2 family the quadrature engine's "
        "own threshold at the returned radius, and the Gaussian radius).",
        "",
        "| experiment | checks | failures |",
        "| --- | ---: | ---: |",
    ]
    for rep in extremes:
        L.append(f"| {rep.name} | {rep.cases} | {len(rep.failures)} |")
    for rep in extremes:
        for f in rep.failures:
            L.append(f"- FAILURE ({rep.name}): {f}")
    L += [
        "",
        "Where certificates degrade (radius 0, i.e. abstain, or a plateau) instead of overflowing:",
        "",
    ]
    L += [f"- {r}" for rep in extremes for r in rep.regimes]

    L += [
        "",
        "## 3. Soundness under sampling (coverage)",
        "",
        "Each seed is an independent run; a failure is a p_A lower bound above the true p_A "
        "(Smooth.certify, with a base classifier whose p_A is known analytically) or a Monte "
        "Carlo table with any threshold below a reference lower bound of the exact one. "
        "'limit' is the largest failure count a bound that holds at the stated level exceeds "
        "with probability <= 1e-4.",
        "",
        "| experiment | seeds | failures | rate | stated failure prob. | limit | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in coverage:
        L.append(
            f"| {c.name} | {c.seeds} | {c.failures} | {c.rate:.4f} | {c.stated:g} | "
            f"{c.limit} | {'ok' if c.ok else 'FAIL'} |"
        )

    L += [
        "",
        "## 4. Interrupted runs (SIGKILL)",
        "",
        "`smoothcert certify` (10 digits inputs, N = 4000) and `smoothcert train` (3 epochs) "
        "killed at random points (plan drawn from the seed), rerun until they finish; "
        "'identical' compares with an uninterrupted run of the same seed (certify: every "
        "column but `time`; train: bit-identical weights, optimizer state and log rows).",
        "",
        "| job | plan seed | kills | of which mid-run | processes | identical |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for what, seed, r in kills:
        L.append(
            f"| {what} | {seed} | {r.kills} | {r.kills_mid_run} | {r.runs} | "
            f"{'yes' if r.identical else 'NO'} |"
        )

    L += [
        "",
        "## 5. Hardening (issue 11)",
        "",
        "Regression tests of the findings of issue 11 (unsafe loading of files from "
        "elsewhere, radii printed or cached above the certified value, rounding of the "
        "closed form, duplicated results, and mutants the earlier tests could not kill). "
        "Each line is a test and the first sentence of its docstring: what it guards.",
    ]
    missing = [f for f in HARDENING_TESTS if f not in hardening]
    if missing:
        L += ["", "Not present (skipped): " + ", ".join(f"`{f}`" for f in missing) + "."]
    for f in hardening:
        tests = test_counts_by_function(rec, files=[f])
        outcomes = collections.Counter()
        for _, counter, _ in tests:
            outcomes.update(counter)
        L += ["", f"`{f}` ({fmt_outcomes(outcomes)}):", ""]
        for name, counter, _ in tests:
            doc = first_sentence(rec.docs.get(name, "")) or "(no docstring)"
            flag = "" if set(counter) <= {"passed"} else f" **[{fmt_outcomes(counter)}]**"
            L.append(f"- `{name.split('::')[-1]}`: {doc}{flag}")
    L += mutation_section()

    counts = ", ".join(f"{k}: {v}" for k, v in sorted(rel.COUNTS.items()))
    L += [
        "",
        "## Totals",
        "",
        f"Step 1 ran {len(rec.results)} tests ({sum(total.values())} of them in the first "
        f"two files); step 2 checked {counts} cases.",
        "",
    ]
    text = "\n".join(L)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text)
    print(text)
    ok = (
        status == 0
        and all(not r.failures for r in extremes)
        and all(c.ok for c in coverage)
        and all(r.identical for _, _, r in kills)
    )
    print(f"\nwrote {args.output} ({'all checks passed' if ok else 'FAILURES: see the report'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
