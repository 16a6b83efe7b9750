"""What a newcomer hits first (issue 13, items 1-6): README commands run as written, the norm of a
results file in ``analyze``, the demo, start-up time, one convention for every command, and the
Monte Carlo table build saying what it does."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: README commands that cannot run here, and why
_NEEDS = [
    ("pip install", "installs packages (the set-up line; CI installs the same way)"),
    ("python -m pytest", "the test suite itself"),
    ("imagenet", "needs the ImageNet data set and a GPU-sized model"),
    ("torchrun", "needs several processes/GPUs (covered by tests/test_distributed.py)"),
    ("srun", "needs a SLURM cluster"),
    ("smoothcert demo", "the demo has its own test (tests/test_demo.py)"),
]

#: small sizes for the test, same commands otherwise
_SMALL = [
    (r"--N 10000\b", "--N 200 --cert-samples 20000"),
    (r"--epochs 30\b", "--epochs 1"),
    (r"--skip 6\b", "--skip 6 --max 18"),  # also the validation runs (--start 3)
    (r"--outdir docs/figures\b", "--outdir docs/figures --quick --only theorem4"),
]


def readme_bash_commands() -> list[tuple[str, str | None]]:
    """``(command, skip reason or None)`` for every command of the README's bash blocks, in
    order (continuation lines joined, comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines = [ln.strip() for ln in joined.splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith("#")]
        if any(ln.startswith("srun") for ln in lines):
            lines = [next(ln for ln in lines if ln.startswith("srun"))]  # the SLURM script
        for line in lines:
            reason = next((why for what, why in _NEEDS if what in line), None)
            out.append((line, reason))
    return out


def test_readme_commands_run_verbatim_in_order(tmp_path):
    """Every command of the README runs as written on a fresh folder, in order (only sizes
    shrunk: --N, --epochs, --skip/--max, figures --quick); the ones needing data, GPUs or a
    cluster are listed with their reason."""
    commands = readme_bash_commands()
    runnable = [c for c, why in commands if why is None]
    assert any(c.startswith("smoothcert certify") for c in runnable)
    assert any(c.startswith("smoothcert analyze") for c in runnable)
    env = dict(os.environ, SMOOTHCERT_CACHE=str(tmp_path / "cache"), MPLBACKEND="Agg")
    work = tmp_path / "clone"
    work.mkdir()
    skipped = []
    start = time.perf_counter()
    for command, why in commands:
        if why is not None:
            skipped.append(f"{command[:60]}...: {why}")
            continue
        small = command
        for pattern, repl in _SMALL:
            small = re.sub(pattern, repl, small)
        words = shlex.split(small)
        assert words[0] == "smoothcert", command
        argv = [sys.executable, "-m", "smoothcert", *words[1:]]
        if words[1] in ("certify", "predict", "train"):
            argv.append("--no-progress")
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        print(f"{time.perf_counter() - t0:6.1f} s  {small[:90]}")
        assert proc.returncode == 0, f"{command}\n{proc.stderr[-2000:]}"
    seconds = time.perf_counter() - start
    print(f"README commands: {len(runnable)} run in {seconds:.1f} s; skipped:")
    print("\n".join(skipped))
    assert (work / "out" / "gauss.tsv").is_file()


# ----------------------------------------------------------------------------- 2: analyze norm
def _results(path: Path, norm: str | None, radii=(0.3, 0.6)) -> str:
    rows = "".join(f"{i}\t1\t1\t{r}\t1\t0:00:01\n" for i, r in enumerate(radii))
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n" + rows)
    if norm is not None:
        Path(str(path) + ".config.json").write_text(
            f'{{"norm": "{norm}", "noise": "gaussian", "sigma": 0.25}}'
        )
    return str(path)


def _smoothcert(*argv):
    from smoothcert.cli.main import main

    return main([str(a) for a in argv])


def test_analyze_heads_linf_table_and_axis_with_the_norm(tmp_path, capsys, monkeypatch):
    """analyze labels an l-inf results file's table columns and plot axis as l-inf radii (read
    from OUTFILE.config.json), not as the reference's l2 radius."""
    import smoothcert.cli.analyze as analyze

    seen = {}
    monkeypatch.setattr(
        analyze, "plot_certified_accuracy", lambda curves, path, **kw: seen.update(kw)
    )
    f = _results(tmp_path / "mixed.tsv", "linf")
    assert _smoothcert("analyze", f, "--radii", 0.25, 0.5, "--plot", tmp_path / "p.png") == 0
    out = capsys.readouterr()
    assert "r∞ = 0.25" in out.out.splitlines()[0]
    assert seen["norm_label"] == "l∞ radius"
    assert "gaussian sigma 0.25" in out.err


def test_analyze_refuses_to_mix_l2_and_linf_files(tmp_path, capsys):
    """analyze refuses, in one line, a table or plot that puts l2 and l-inf radii together
    (a file without configuration counts as l2, the reference's, and says so)."""
    l2 = _results(tmp_path / "gauss.tsv", "l2")
    ref = _results(tmp_path / "reference.tsv", None)
    linf = _results(tmp_path / "mixed.tsv", "linf")
    assert _smoothcert("analyze", l2, ref, "--radii", 0.25) == 0
    out = capsys.readouterr()
    assert "| r = 0.25 |" in out.out  # the reference's table, unchanged for l2
    assert "no reference.tsv.config.json, l2 radii as the reference's" in out.err
    for files in ((l2, linf), (ref, linf)):
        assert _smoothcert("analyze", *files, "--radii", 0.25) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "cannot compare l2 and linf radii" in err[0], err


def test_certify_creates_the_folder_of_outfile(tmp_path):
    """certify/predict create the missing folder of OUTFILE (README's out/gauss.tsv on a fresh
    clone) instead of ending with 'directory ... of OUTFILE does not exist'."""
    from smoothcert.results import check_outfile

    check_outfile(tmp_path / "out" / "deeper" / "gauss.tsv")
    assert (tmp_path / "out" / "deeper").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(Exception, match="cannot create the directory"):
        check_outfile(tmp_path / "file" / "gauss.tsv")


# ----------------------------------------------------------------------------- 4: start-up
_NO_TORCH = """
import sys
from smoothcert.cli.main import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
print("TORCH" if "torch" in sys.modules else "NO-TORCH", rc)
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["analyze", "--help"], ["analyze", "RESULTS", "--radii", "0.25"]],
)
def test_start_up_does_not_import_torch(argv, tmp_path):
    """`smoothcert --help`, `--version` and `analyze` start without importing torch (~3 s of
    start-up before)."""
    results = _results(tmp_path / "gauss.tsv", "l2")
    argv = [results if a == "RESULTS" else a for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, MPLBACKEND="Agg"),
    )
    assert proc.stdout.strip().splitlines()[-1] == "NO-TORCH 0", proc.stdout + proc.stderr


def test_version_and_command_list():
    """`smoothcert --version` prints the installed version, and the command list of `--help`
    (kept without importing the commands) matches each command's own help."""
    from importlib.metadata import version

    from smoothcert.cli.main import COMMANDS, build_parser

    proc = subprocess.run(
        [sys.executable, "-m", "smoothcert", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == f"smoothcert {version('smoothcert')}"
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {c.dest: c.help for c in sub._choices_actions} == COMMANDS


# ----------------------------------------------------------------------------- 5: conventions
def _help(command: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "smoothcert", command, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, COLUMNS="200"),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("command", ["certify", "predict", "train", "demo"])
def test_long_running_commands_accept_no_progress(command):
    """Every long-running command (certify and predict too, not only train and demo) accepts
    --no-progress."""
    assert "--no-progress" in _help(command)


def test_help_conventions_upper_case_positionals_and_defaults_once():
    """train's positionals are upper case like the other commands', and no option of its
    --help shows its default twice ('(default: cuda if available) (default: None)')."""
    text = _help("train")
    assert "DATASET ARCH OUTDIR" in text
    for line in text.splitlines():
        assert line.count("(default") <= 1, line


def test_cohen_style_call_gets_a_sigma_hint(capsys):
    """A call in the reference's order `certify DATASET CHECKPOINT 0.25 OUTFILE` ends in one line
    saying that sigma is now --sigma."""
    assert (
        _smoothcert("certify", "cifar10", "model.pth.tar", "0.25", "out.tsv", "--skip", "20") == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sigma 0.25" in err[0], err


def test_config_file_has_the_mode_of_the_results_file(tmp_path):
    """OUTFILE.config.json (written through a temporary file) gets the mode the umask gives the
    TSV next to it (0644 under umask 022), not mkstemp's 0600."""
    from smoothcert.results import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.tsv.config.json", "{}")
        (tmp_path / "out.tsv").write_text("")
    finally:
        os.umask(old)
    assert (tmp_path / "out.tsv.config.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "out.tsv").stat().st_mode & 0o777 == 0o644


# ----------------------------------------------------------------------------- 6: MC table
def test_monte_carlo_table_build_shows_its_threshold_step(capsys):
    """Building a Monte Carlo certificate table with progress shows the DKW-threshold step over
    the radius grid (it printed nothing for ~18 s after the sampling bar reached 100%)."""
    from smoothcert.certificates import get_certificate
    from smoothcert.noises import make_noise

    noise = make_noise("linf-mixed", 16, k=2, sigma=0.5)
    get_certificate(noise, "linf", samples=2000, n_radii=8, cache=False, progress=True)
    err = capsys.readouterr().err
    assert "DKW thresholds" in err and "8/8" in err


def test_every_default_is_shown_in_help():
    """Every option with a default says it in --help (certify's --k, --norm, --cert-samples and
    the seeds did not), whether written by hand or by the defaults formatter."""
    import argparse

    from smoothcert.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    hidden = []
    for name, parser in sub.choices.items():
        auto = issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter)
        for a in parser._actions:
            if (
                a.option_strings
                and a.default is not None
                and a.default is not False
                and a.default != argparse.SUPPRESS
                and not auto
                and "default" not in (a.help or "")
            ):
                hidden.append(f"{name} {a.option_strings[0]}")
    assert not hidden
