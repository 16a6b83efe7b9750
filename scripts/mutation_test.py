"""Mutation testing of the certificate code with mutmut (issue 11): do the tests fail when the
code is changed in small ways?

    pip install -e ".[mutation]"
    python scripts/mutation_test.py                      # all groups (hours on a busy machine)
    python scripts/mutation_test.py noises               # one group
    python scripts/mutation_test.py --collect noises     # re-read a finished run's results

Each group (``noises``: src/smoothcert/noises/, ``certificates``: src/smoothcert/certificates/,
``smooth``: src/smoothcert/smooth.py) is run in its own copy of the tree (``--workdir``, outside
the repository: mutmut writes a ``mutants/`` folder next to the code it mutates, and the working
tree must not change under other processes) with a fast selection of the tests relevant to it;
mutmut runs, for each mutant, only the selected tests that call the mutated function. Tests of
the selection that already fail on the unmutated copy are deselected (and listed in the results).

Results go to ``results/mutation/<group>.json`` (counts by status, the score, and every
surviving mutant with file:line, function and diff) and ``results/mutation/summary.json``;
``scripts/reliability_report.py`` reads them, together with ``results/mutation/triage.json`` (a
hand-kept classification of survivors keyed by mutmut's mutant name: ``radius`` = could
enlarge a certified radius, or ``harmless`` / ``equivalent``, with a note). Not for CI: a full
run takes hours.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "mutation"

# group -> (glob of the files mutated, test files of the fast selection, extra pytest options)
GROUPS = {
    "noises": (
        "src/smoothcert/noises/*",
        ["tests/test_noises.py", "tests/test_noise_training_mutants.py"],
        # the training test (3 s, a full train() call) guards training.py, not the noises
        ["-k", "not training_batches"],
    ),
    "certificates": (
        "src/smoothcert/certificates/*",
        [
            "tests/test_certificates.py",
            "tests/test_certificate_mutants.py",
            "tests/test_certificate_trust.py",
        ],
        [],
    ),
    "smooth": (
        "src/smoothcert/smooth.py",
        # test_sequential.py covers certify_adaptive / predict_adaptive (the stored run of
        # 2026-12-02 predates this entry: its 391 'no tests' mutants are mostly those methods)
        [
            "tests/test_smooth.py",
            "tests/test_sequential.py",
            "tests/test_certificate_mutants.py",
            "tests/test_certificate_trust.py",
            "tests/test_results_integrity.py",
        ],
        [],
    ),
}
COMMON_PYTEST = ["-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning"]
# mutmut exit codes that count as detected / not detected (mutmut.stats.status_by_exit_code)
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
UNDETECTED = {"survived", "no tests"}


def _tool_version() -> str:
    from importlib.metadata import version

    return f"mutmut {version('mutmut')}"


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(str(x)) for x in items) + "]"


def prepare(group: str, work: Path) -> tuple[list[str], list[str]]:
    """A fresh copy of the tree in ``work`` with mutmut's configuration for ``group``.
    Returns (test files used, node ids deselected because they fail unmutated)."""
    pattern, test_files, extra = GROUPS[group]
    tests = [t for t in test_files if (ROOT / t).exists()]
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)
    # the unmutated copy: tests that already fail are deselected (the tree may be mid-change)
    env = _env(work)
    env["PYTHONPATH"] = str(work / "src")
    pre = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-rf",
            *COMMON_PYTEST,
            *extra,
            *tests,
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    failing = sorted(set(re.findall(r"^FAILED (\S+?)(?: - .*)?$", pre.stdout, re.M)))
    if pre.returncode not in (0, 1) or (pre.returncode == 1 and not failing):
        sys.exit(
            f"{group}: the test selection does not run on the unmutated copy:\n"
            f"{pre.stdout[-3000:]}{pre.stderr[-2000:]}"
        )
    deselect = [a for f in failing for a in ("--deselect", f)]
    text += (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/"]\n'
        f"only_mutate = {_toml_list([pattern])}\n"
        f"pytest_add_cli_args = {_toml_list(COMMON_PYTEST + extra + deselect)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        "use_git_change_detection = false\n"
        # mutmut's default "fork" (the tests use one torch thread, conftest.py); with
        # "forkserver" a third of the noises mutants ended as spurious timeouts
        'process_isolation = "fork"\n'
    )
    (work / "pyproject.toml").write_text(text)
    return tests, failing


def _env(work: Path) -> dict:
    env = dict(os.environ)
    cache = work / "smoothcert-cache"
    cache.mkdir(exist_ok=True)
    env.update(
        SMOOTHCERT_CACHE=str(cache),
        MPLBACKEND="Agg",
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def run(group: str, work: Path, max_children: int) -> None:
    start = time.time()
    tests, failing = prepare(group, work)
    (work / "selection.json").write_text(json.dumps({"tests": tests, "deselected": failing}))
    with open(work / "mutmut.log", "w") as log:
        rc = subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
            cwd=work,
            env=_env(work),
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    if rc:
        sys.exit(f"{group}: mutmut exited with {rc}; see {work / 'mutmut.log'}")
    collect(group, work, seconds=time.time() - start)


def _function_starts(source: str) -> dict[tuple[str | None, str], int]:
    """(class or None, function) -> first line (decorators included) of the original file."""
    out = {}
    tree = ast.parse(source)
    for node in tree.body:
        scopes = [(None, node)]
        if isinstance(node, ast.ClassDef):
            scopes = [(node.name, child) for child in node.body]
        for cls, fn in scopes:
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
                out[(cls, fn.name)] = first
    return out


def _changed_line(diff: str) -> tuple[int, str, str]:
    """(line offset in the function, 1-based; old line; new line) of the first change."""
    old_no, old, new = 0, "", ""
    for line in diff.splitlines():
        hunk = re.match(r"^@@ -(\d+)", line)
        if hunk:
            old_no = int(hunk.group(1)) - 1
            continue
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            old_no += 1
            old = line[1:].strip()
            break
        if line.startswith("+"):
            new = line[1:].strip()
            break
        old_no += 1
    for line in diff.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            new = line[1:].strip()
            break
    return max(old_no, 1), old, new


def collect(group: str, work: Path, seconds: float | None = None) -> dict:
    """Read mutmut's results in ``work`` into ``results/mutation/<group>.json``."""
    code = r"""
import json, sys
from pathlib import Path
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files
from mutmut.utils.format_utils import orig_function_and_class_names_from_key
out = []
for path in walk_mutatable_files():
    m = SourceFileMutationData(path=path)
    m.load()
    for key, code in sorted(m.exit_code_by_key.items()):
        status = status_by_exit_code[code]
        fn, cls = orig_function_and_class_names_from_key(key)
        diff = get_diff_for_mutant(key, path=m.path) if status in ("survived", "no tests") else ""
        out.append({"key": key, "file": str(path), "class": cls, "function": fn,
                    "status": status, "diff": diff})
json.dump(out, sys.stdout)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env=_env(work), capture_output=True, text=True
    )
    if proc.returncode:
        sys.exit(f"{group}: cannot read mutmut's results in {work}:\n{proc.stderr[-3000:]}")
    mutants = json.loads(proc.stdout)
    selection = json.loads((work / "selection.json").read_text())
    starts = {}
    counts: dict[str, int] = {}
    survivors = []
    for m in mutants:
        counts[m["status"]] = counts.get(m["status"], 0) + 1
        if m["status"] not in UNDETECTED:
            continue
        if m["file"] not in starts:
            starts[m["file"]] = _function_starts((work / m["file"]).read_text())
        offset, old, new = _changed_line(m["diff"])
        first = starts[m["file"]].get((m["class"], m["function"]))
        line = first + offset - 1 if first else None
        survivors.append(
            {
                "key": m["key"],
                "status": m["status"],
                "file": m["file"],
                "line": line,
                "function": (f"{m['class']}." if m["class"] else "") + m["function"],
                "old": old,
                "new": new,
                "diff": m["diff"],
            }
        )
    detected = sum(v for k, v in counts.items() if k in DETECTED)
    undetected = sum(v for k, v in counts.items() if k in UNDETECTED)
    result = {
        "group": group,
        "mutated": GROUPS[group][0],
        "tool": _tool_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", "src", "tests")),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": None if seconds is None else round(seconds),
        "tests": selection["tests"],
        "deselected_failing_unmutated": selection["deselected"],
        "counts": counts,
        "mutants": len(mutants),
        "detected": detected,
        "undetected": undetected,
        "score": round(detected / (detected + undetected), 4) if detected + undetected else None,
        "survivors": survivors,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{group}.json").write_text(json.dumps(result, indent=1) + "\n")
    _summary()
    print(
        f"{group}: {len(mutants)} mutants, {detected} detected, {undetected} undetected "
        f"(score {result['score']}); {OUT / (group + '.json')}"
    )
    return result


def _summary() -> None:
    groups = {}
    for group in GROUPS:
        path = OUT / f"{group}.json"
        if path.exists():
            data = json.loads(path.read_text())
            groups[group] = {
                k: data[k]
                for k in ("mutants", "detected", "undetected", "score", "commit", "date", "counts")
            }
    detected = sum(g["detected"] for g in groups.values())
    undetected = sum(g["undetected"] for g in groups.values())
    summary = {
        "groups": groups,
        "detected": detected,
        "undetected": undetected,
        "score": round(detected / (detected + undetected), 4) if detected + undetected else None,
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = []
    for group in groups:
        for s in json.loads((OUT / f"{group}.json").read_text())["survivors"]:
            lines.append(
                f"{s['file']}:{s['line']}\t{s['function']}\t{s['status']}\t"
                f"{s['old']}  ->  {s['new']}"
            )
    (OUT / "survivors.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "groups",
        nargs="*",
        metavar="GROUP",
        help=f"groups to run: {', '.join(GROUPS)} (default: all)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "smoothcert-mutation",
        help="where the copies of the tree are made (outside the repository)",
    )
    parser.add_argument(
        "--max-children", type=int, default=1, help="mutants tested in parallel (default 1)"
    )
    parser.add_argument(
        "--collect",
        action="store_true",
        help="only re-read the results of a finished run in --workdir",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    work = args.workdir.resolve()
    if work == ROOT or ROOT in work.parents:
        parser.error("--workdir must be outside the repository")
    for group in args.groups or list(GROUPS):
        if args.collect:
            collect(group, work / group)
        else:
            run(group, work / group, args.max_children)
    return 0


if __name__ == "__main__":
    sys.exit(main())
