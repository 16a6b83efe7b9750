"""The arguments of the library jobs are checked at their boundary (issue 15).

:func:`smoothcert.jobs.certify_file` / :func:`~smoothcert.jobs.predict_file` check every argument
first (:mod:`smoothcert.jobs.checks`): a bad value is a one-line SmoothCertError naming the
option, before any data or model is loaded and before OUTFILE (or its folder, or a lock) is
written. The CLI relies on these checks (same messages, exit 2), and the demo runs them on its
configuration before it trains.
"""

from __future__ import annotations

import inspect
import io
from dataclasses import replace
from pathlib import Path

import pytest

from smoothcert import jobs
from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError
from smoothcert.jobs import checks


@pytest.fixture
def no_loading(monkeypatch):
    """Loading the data or the model fails the test: the checks must come first."""

    def load_inputs(*args, **kwargs):
        raise AssertionError("the job loaded its inputs before checking its arguments")

    monkeypatch.setattr(jobs.certify, "load_inputs", load_inputs)
    monkeypatch.setattr(jobs.predict, "load_inputs", load_inputs)


def _refused(run, tmp_path, match: str, **kwargs) -> str:
    folder = tmp_path / "runs"
    outfile = folder / "out.tsv"
    with pytest.raises(SmoothCertError) as info:
        run("digits", tmp_path / "missing.pth", outfile, sigma=0.25, progress=False, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(match), message
    # nothing written: no OUTFILE, no configuration, no lock, not even its folder
    assert not outfile.exists() and not folder.exists()
    return message


_BOTH = [
    (dict(n=0), "--N must be an integer >= 1, got 0"),
    (dict(n=2**40 + 1), "--N must be at most 2^40"),
    (dict(n=1.5), "--N must be an integer >= 1, got 1.5"),
    (dict(n=None), "--N must be an integer >= 1, got None"),
    (dict(alpha=1.5), "--alpha must lie strictly between 0 and 1, got 1.5"),
    (dict(alpha=0.0), "--alpha must lie strictly between 0 and 1, got 0.0"),
    (dict(alpha=float("nan")), "--alpha must lie strictly between 0 and 1, got nan"),
    (dict(alpha="often"), "--alpha must lie strictly between 0 and 1, got 'often'"),
    (dict(seed=-1), "--seed must be an integer in [0, 2^63), got -1"),
    (dict(seed=2**63), "--seed must be an integer in [0, 2^63)"),
    (dict(skip=0), "--skip must be an integer >= 1, got 0"),
    (dict(batch=0), "--batch must be an integer >= 1, got 0"),
    (dict(batch=True), "--batch must be an integer >= 1, got True"),
    (dict(start=-1), "--start must be an integer >= 0, got -1"),
    (dict(max=0), "--max 0 selects no input"),
    (dict(max=-2), "--max must be an integer >= -1, got -2"),
]

_CERTIFY = _BOTH + [
    (dict(n0=0), "--N0 must be an integer >= 1, got 0"),
    (dict(n0=2**40 + 1), "--N0 must be at most 2^40"),
    (dict(cert_samples=5), "--cert-samples must be an integer >= 100, got 5"),
    (dict(cert_samples=2**41), "--cert-samples must be at most 2^40"),
    (dict(cert_failure_prob=0.0), "--cert-failure-prob must lie strictly between 0 and 1"),
    (dict(radii=[0.25]), "--radii needs --adaptive"),
    (dict(rtol=0.1), "--rtol needs --adaptive"),
    (dict(adaptive=True, bilateral=True), "--bilateral is not available with --adaptive"),
    (dict(adaptive=True, radii=[0.25], rtol=0.1), "--rtol applies without --radii"),
    (dict(adaptive=True, radii=[0.5, 0.25]), "--radii: radii must be strictly increasing"),
    (dict(adaptive=True, radii=[-0.1]), "--radii: radii must be >= 0"),
    (dict(adaptive=True, rtol=0.0), "--rtol: rtol must be a finite number > 0"),
    (dict(adaptive=True, n=0), "--N must be an integer >= 1, got 0"),
]


@pytest.mark.parametrize("kwargs, match", _CERTIFY)
def test_certify_file_checks_its_arguments_first(no_loading, tmp_path, kwargs, match):
    """certify_file with a bad argument (n=0, seed=-1, alpha=1.5, skip=0, max=0, a grid without
    adaptive, ...) ends in the CLI's one-line SmoothCertError before loading anything or writing
    OUTFILE (it used to load the data and the model first, or run on)."""
    _refused(jobs.certify_file, tmp_path, match, **kwargs)


@pytest.mark.parametrize("kwargs, match", _BOTH)
def test_predict_file_checks_its_arguments_first(no_loading, tmp_path, kwargs, match):
    """predict_file with a bad argument (n=0, seed=-1, alpha=1.5, skip=0, max=0, ...) ends in
    the CLI's one-line SmoothCertError before loading anything or writing OUTFILE."""
    _refused(jobs.predict_file, tmp_path, match, **kwargs)


@pytest.mark.parametrize("run", [jobs.certify_file, jobs.predict_file])
def test_outfile_that_is_a_folder_is_refused_before_loading(no_loading, tmp_path, run):
    """An OUTFILE that is a folder is a one-line error before anything is loaded."""
    with pytest.raises(SmoothCertError, match=r"^OUTFILE .* is a directory$"):
        run("digits", tmp_path / "missing.pth", tmp_path, sigma=0.25, progress=False)


@pytest.mark.parametrize(
    "run, check",
    [
        (jobs.certify_file, checks.check_certify_args),
        (jobs.predict_file, checks.check_predict_args),
    ],
)
def test_the_checks_defaults_are_the_jobs(run, check):
    """The checks' defaults (used by the demo's early check) are the job's own defaults."""
    job = inspect.signature(run).parameters
    for name, param in inspect.signature(check).parameters.items():
        if param.default is not inspect.Parameter.empty:
            assert job[name].default == param.default, name


# ----------------------------------------------------------------------------- the CLI
def _cli(capsys, command, tmp_path, *extra):
    outfile = tmp_path / "o.tsv"
    capsys.readouterr()
    rc = main(
        [
            command,
            "digits",
            str(tmp_path / "missing.pth"),
            str(outfile),
            "--sigma",
            "0.25",
            "--no-progress",
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert not outfile.exists() and not Path(f"{outfile}.config.json").exists()
    return rc, err


@pytest.mark.parametrize(
    "command, extra, line",
    [
        ("certify", ["--N", "0"], "smoothcert certify: error: --N must be an integer >= 1, got 0"),
        (
            "certify",
            ["--skip", "0"],
            "smoothcert certify: error: --skip must be an integer >= 1, got 0",
        ),
        (
            "certify",
            ["--radii", "0.25"],
            "smoothcert certify: error: --radii needs --adaptive (it "
            "sets the stopping rule of sequential certification)",
        ),
        (
            "predict",
            ["--alpha", "1.5"],
            "smoothcert predict: error: --alpha must lie strictly between 0 and 1, got 1.5",
        ),
        (
            "predict",
            ["--seed", "-1"],
            "smoothcert predict: error: --seed must be an integer in [0, 2^63), got -1",
        ),
    ],
)
def test_cli_keeps_its_messages(no_loading, capsys, tmp_path, command, extra, line):
    """The CLI, now relying on the library's checks, still ends a bad option in exit 2 and the
    same one line, with nothing written."""
    rc, err = _cli(capsys, command, tmp_path, *extra)
    assert rc == 2 and err == [line]


def test_radius_alpha_uses_the_shared_check(capsys):
    """radius --alpha goes through the one alpha check (one way to check a probability): the
    CLI's message, nan refused too."""
    for value in ("1.5", "nan"):
        capsys.readouterr()
        rc = main(["radius", "--dim", "8", "--sigma", "1", "--p", "0.9", "--alpha", value])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and err == [
            f"smoothcert radius: error: --alpha must lie strictly "
            f"between 0 and 1, got {float(value)}"
        ], err


# ----------------------------------------------------------------------------- the demo
@pytest.mark.parametrize(
    "change, match",
    [
        (dict(n=0), "--N must be an integer >= 1, got 0"),
        (dict(alpha=1.5), "--alpha must lie strictly between 0 and 1, got 1.5"),
        (dict(skip=0), "--skip must be an integer >= 1, got 0"),
        (dict(l2_radii=(0.4, 0.2)), "--radii: radii must be strictly increasing"),
    ],
)
def test_demo_rejects_a_bad_config_before_training(monkeypatch, tmp_path, change, match):
    """run_demo with a bad DemoConfig certification value (N=0, alpha=1.5, skip=0, a decreasing
    radius grid) ends in one line before any training (it used to train first and fail, or run
    on, at certification)."""
    import smoothcert.training
    from smoothcert.demo import QUICK, run_demo

    def train(*args, **kwargs):
        raise AssertionError("the demo trained before checking its configuration")

    monkeypatch.setattr(smoothcert.training, "train", train)
    with pytest.raises(SmoothCertError) as info:
        run_demo(
            tmp_path / "demo", config=replace(QUICK, **change), progress=False, out=io.StringIO()
        )
    message = str(info.value)
    assert "\n" not in message and message.startswith(match), message
    assert not (tmp_path / "demo" / "models").exists()
