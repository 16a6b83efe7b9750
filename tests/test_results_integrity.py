"""Results files never claim a radius that was not certified, one run per file, and the CLI's
numeric options end in one-line errors (issue 11: Critical 2, High 5, the medium CLI items, the
resume checks)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from smoothcert.analysis import (
    certified_accuracy,
    certified_accuracy_curve,
    format_radius_cell,
    nearest_radius_bounds,
    read_results,
)
from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError
from smoothcert.jobs import certify as certify_job

FAST = ["--N0", "20", "--N", "200", "--batch", "100", "--skip", "60", "--max", "200"]
SIGMA = 0.25


def _certify(capsys, checkpoint, out, *extra, command="certify"):
    capsys.readouterr()
    argv = [command, "digits", str(checkpoint), str(out), "--sigma", str(SIGMA), "--device", "cpu"]
    if command == "certify":
        argv += FAST
    else:
        argv += ["--N", "200", "--batch", "100", "--skip", "60", "--max", "200"]
    rc = main([*argv, *extra])
    return rc, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def _gauss(p: float) -> float:
    return SIGMA * float(stats.norm.ppf(p))


def _p_for_radius(r: float) -> float:
    return float(stats.norm.cdf(r / SIGMA))


# ----------------------------------------------------------------------------- the radius column
def _check_cell(x: float) -> None:
    text = format_radius_cell(x)
    assert text == f"{float(text):.3}", (x, text)  # the reference's "{:.3}" shape
    assert float(text) <= x, (x, text)
    assert Decimal(text) <= Decimal(x), (x, text)
    if 1e-300 < x < math.inf:  # within one unit of the third significant digit
        unit = Decimal(1).scaleb(Decimal(x).adjusted() - 2)
        assert Decimal(x) - Decimal(text) < unit, (x, text)


@settings(max_examples=600, deadline=None)
@given(st.floats(min_value=0.0, allow_nan=False, allow_infinity=True))
def test_radius_cell_never_exceeds_the_radius(x):
    """The radius column never prints more than the certified radius (the reference's "{:.3}"
    rounds to nearest: a certified 0.2496 was written 0.25 and counted at r = 0.25), in the
    reference's shape and within one unit of the third significant digit."""
    _check_cell(x)


def test_radius_cell_exhaustive_sweep():
    """The same property over 38,000 floats: log-uniform from 1e-300 to 1e300, and the floats
    just around every three-digit value from 0.1 to 10 (where rounding decides)."""
    rng = np.random.default_rng(11)
    xs = list(10.0 ** rng.uniform(-300, 300, 20_000))
    grid = np.arange(100, 1000) * 10.0 ** np.arange(-3, 1)[:, None]
    for g in grid.reshape(-1):
        xs += [
            float(np.nextafter(g, 0)),
            float(g),
            float(np.nextafter(g, 2 * g)),
            g * (1 - 1e-4),
            g * (1 + 4e-4),
        ]
    xs += [0.0, -0.0, math.inf, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    for x in xs:
        _check_cell(x)
    assert format_radius_cell(0.2496) == "0.249" and f"{0.2496:.3}" == "0.25"
    assert format_radius_cell(0.99999) == "0.999"
    assert format_radius_cell(1234.5) == "1.23e+03" and format_radius_cell(0.0) == "0.0"
    with pytest.raises(ValueError):
        format_radius_cell(-1e-3)
    with pytest.raises(ValueError):
        format_radius_cell(math.nan)


@settings(max_examples=600, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e300, allow_nan=False))
def test_nearest_bounds_hold_every_value_printed_so(x):
    """An older file's radius printed with "{:.3}" (to nearest) is bracketed by
    nearest_radius_bounds, and the bracket is at most one unit of the third digit wide."""
    text = f"{x:.3}"
    low, high = nearest_radius_bounds(text)
    assert low <= x <= high
    if x > 1e-300:
        unit = 10.0 ** Decimal(text).adjusted() / 100
        assert high - low <= unit * (1 + 1e-9)


def test_format_row_prints_toward_zero_and_keeps_the_full_radius():
    """certify's row: the radius column is rounded toward zero and the full-precision radius is
    the last column (a certified 0.2496 is not written 0.25)."""
    row = certify_job.format_row(3, 1, 1, 0.2496, 1.5, 0.8414).split("\t")
    assert row[3] == "0.249" and row[-1] == "0.2496"
    assert certify_job.header(False)[-1] == "radius_exact"
    assert certify_job.header(True)[-2:] == ["pB_upper", "radius_exact"]


# ----------------------------------------------------------------------------- analyze
def _write_results(path: Path, rows, header, config=None) -> Path:
    path.write_text("\n".join(["\t".join(header), *("\t".join(map(str, r)) for r in rows)]) + "\n")
    if config is not None:
        Path(str(path) + ".config.json").write_text(json.dumps(config))
    return path


def test_analyze_counts_the_full_precision_radius(tmp_path):
    """A file certify writes is counted on its full-precision radius: a certified 0.2496 is not
    counted at r = 0.25 (it was: printed 0.25), a certified 0.25 is."""
    head = certify_job.header(False)
    rows = [
        certify_job.format_row(0, 1, 1, 0.2496, 1.0, _p_for_radius(0.2496)),
        certify_job.format_row(1, 2, 2, 0.25, 1.0, _p_for_radius(0.25)),
        certify_job.format_row(2, 3, 4, 0.9, 1.0, _p_for_radius(0.9)),
    ]  # wrong class
    path = tmp_path / "new.tsv"
    path.write_text("\t".join(head) + "\n" + "\n".join(rows) + "\n")
    res = read_results(path)
    np.testing.assert_array_equal(res.radius, [0.2496, 0.25, 0.9])
    assert certified_accuracy(res, [0.2496, 0.25, 0.2501]).tolist() == [2 / 3, 1 / 3, 0.0]
    x, y = certified_accuracy_curve(res, 1.0)
    assert x.tolist() == [0.0, 0.2496, 0.25, 1.0] and y.tolist() == [2 / 3, 1 / 3, 0.0, 0.0]


def test_analyze_refuses_a_radius_exact_that_does_not_match(tmp_path, capsys):
    """A row whose radius_exact does not print as its radius column is refused (one line)."""
    head = certify_job.header(False)
    row = certify_job.format_row(0, 1, 1, 0.2496, 1.0, 0.8).replace("\t0.2496", "\t0.26")
    path = tmp_path / "bad.tsv"
    path.write_text("\t".join(head) + "\n" + row + "\n")
    assert main(["analyze", str(path)]) == 2
    assert "radius_exact" in _one_line(capsys.readouterr().err)


LEGACY_HEAD = ["idx", "label", "predict", "radius", "correct", "time", "pA_lower"]


def _legacy_config(method="closed-form"):
    return {
        "noise": "gaussian",
        "dim": 64,
        "k": 0.0,
        "sigma": SIGMA,
        "norm": "l2",
        "bilateral": False,
        "certificate": {"method": method},
    }


def test_older_smoothcert_files_are_not_over_counted(tmp_path):
    """A file of an older smoothcert (config, radius rounded to nearest) does not count a
    printed 0.25 whose certified radius is 0.2496: the radius is recomputed from pA_lower
    through the configuration's certificate (0.2504 stays counted)."""
    p_low, p_high = _p_for_radius(0.2496), _p_for_radius(0.2504)
    rows = [
        (0, 1, 1, f"{_gauss(p_low):.3}", 1, "0:00:01", repr(p_low)),
        (1, 2, 2, f"{_gauss(p_high):.3}", 1, "0:00:01", repr(p_high)),
        (2, 3, 3, "0.5", 1, "0:00:01", repr(_p_for_radius(0.5004))),
    ]
    assert [r[3] for r in rows] == ["0.25", "0.25", "0.5"]
    path = _write_results(tmp_path / "old.tsv", rows, LEGACY_HEAD, _legacy_config())
    res = read_results(path)
    assert certified_accuracy(res, [0.25, 0.5, 0.5004]).tolist() == [2 / 3, 1 / 3, 0.0]
    x, _ = certified_accuracy_curve(res, 1.0)  # steps at the recomputed radii
    assert x[1:4].tolist() == pytest.approx([0.2496, 0.2504, 0.5004], abs=1e-9)


def test_older_file_recomputed_above_its_printed_value_is_not_trusted(tmp_path):
    """An older file's row whose pA_lower gives a radius above its printed interval (an edited
    pA_lower, or another version's certificate) counts the interval's low end, not the
    recomputed radius."""
    rows = [(0, 1, 1, "0.25", 1, "0:00:01", repr(_p_for_radius(0.3)))]
    res = read_results(_write_results(tmp_path / "edited.tsv", rows, LEGACY_HEAD, _legacy_config()))
    assert certified_accuracy(res, [0.2495, 0.25, 0.3]).tolist() == [1.0, 0.0, 0.0]


def test_older_files_that_cannot_be_recomputed_count_the_low_end(tmp_path):
    """Without pA_lower, or with a Monte Carlo certificate (not rebuilt), an older file's
    printed value counts as the low end of its rounding interval: 0.25 counts below 0.2495."""
    rows = [(0, 1, 1, "0.25", 1, "0:00:01", repr(_p_for_radius(0.2503)))]
    mc = _write_results(tmp_path / "mc.tsv", rows, LEGACY_HEAD, _legacy_config("monte-carlo"))
    bare = _write_results(
        tmp_path / "bare.tsv", [r[:6] for r in rows], LEGACY_HEAD[:6], _legacy_config()
    )
    for path in (mc, bare):
        res = read_results(path)
        assert certified_accuracy(res, [0.2495, np.nextafter(0.2495, 1), 0.25]).tolist() == [
            1.0,
            0.0,
            0.0,
        ], path


def test_files_without_config_are_read_as_the_reference_reads_them(tmp_path):
    """A file without FILE.config.json (the reference's own) counts its printed radius as it
    is, as the reference's analysis does (its published tables are reproduced)."""
    rows = [(0, 1, 1, "0.25", 1, "0:00:01")]
    res = read_results(_write_results(tmp_path / "ref.tsv", rows, LEGACY_HEAD[:6]))
    assert res.radius_low is None
    assert certified_accuracy(res, [0.25, 0.2501]).tolist() == [1.0, 0.0]


def test_analyze_refuses_repeated_idx(tmp_path, capsys):
    """A results file in which an idx repeats (two runs appended to it: 24 rows for 12 inputs)
    is refused with one line instead of counting the duplicates."""
    rows = [(0, 1, 1, "0.5", 1, "1.0"), (1, 2, 2, "0.5", 1, "1.0"), (0, 1, 1, "0.5", 1, "1.1")]
    path = _write_results(tmp_path / "dup.tsv", rows, LEGACY_HEAD[:6])
    assert main(["analyze", str(path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "idx 0 repeats line 2" in line and f"{path}:4" in line


# ----------------------------------------------------------------------------- one run per file
def _hold_lock(outfile):
    fd = os.open(str(outfile) + ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_second_run_on_one_outfile_is_refused(capsys, checkpoint, tmp_path):
    """While a run holds OUTFILE, a second certify / predict / merge on it is refused with one
    line (exit 2) that names the file and the other run, and writes nothing (two runs wrote
    24 rows for 12 inputs); once the lock is free the run goes ahead and removes its lock."""
    out = tmp_path / "locked.tsv"
    fd = _hold_lock(out)
    try:
        for command in ("certify", "predict"):
            rc, err = _certify(capsys, checkpoint, out, command=command)
            assert rc == 2
            line = _one_line(err)
            assert str(out) in line and "another smoothcert run" in line
            assert not out.exists()
        capsys.readouterr()
        assert main(["merge", str(out)]) == 2
        assert "another smoothcert run" in _one_line(capsys.readouterr().err)
    finally:
        os.close(fd)
    rc, err = _certify(capsys, checkpoint, out)
    assert rc == 0, err
    rc, err = _certify(capsys, checkpoint, out, "--seed", "3")  # another configuration
    assert rc == 2 and "another configuration" in err
    rc, err = _certify(capsys, checkpoint, out)  # the failed run released the lock
    assert rc == 0, err
    assert len(out.read_text().splitlines()) == 5
    assert not Path(str(out) + ".lock").exists()


def test_shard_lock_is_held_by_rank_zero_only(tmp_path):
    """In a job, rank 0 holds OUTFILE's lock and the other ranks do not take it (no rank of one
    job refuses another); a single process continuing part files is refused like any run."""
    from smoothcert.distributed import ShardJob

    out = tmp_path / "job.tsv"
    rank0, rank1 = ShardJob(0, 2, 0, group=False), ShardJob(1, 2, 1, group=False)
    with rank0.lock(out), rank1.lock(out):
        assert Path(str(out) + ".lock").exists()
        with pytest.raises(SmoothCertError, match="another smoothcert run"):
            with ShardJob(0, 1, 0, group=False).lock(out):
                pass
    assert not Path(str(out) + ".lock").exists()


# ----------------------------------------------------------------------------- resume identity
def test_resume_refuses_another_checkpoint(capsys, checkpoint, tmp_path):
    """Resuming a results file with a checkpoint whose content differs (same path, retrained)
    is refused (checkpoint_sha256); the same content at another path resumes."""
    from smoothcert.models import get_architecture, save_checkpoint

    ckpt = tmp_path / "model.pth.tar"
    shutil.copy(checkpoint, ckpt)
    out = tmp_path / "res.tsv"
    rc, err = _certify(capsys, ckpt, out)
    assert rc == 0, err
    full = out.read_text()
    interrupted = "".join(full.splitlines(keepends=True)[:2])  # header and one row
    out.write_text(interrupted)
    moved = tmp_path / "moved.pth.tar"
    shutil.copy(checkpoint, moved)
    rc, err = _certify(capsys, moved, out)  # same weights elsewhere: resumes, 3 more rows
    assert rc == 0, err
    assert len(out.read_text().splitlines()) == 5
    out.write_text(interrupted)
    torch.manual_seed(1)
    save_checkpoint(str(ckpt), get_architecture("digits_cnn", "digits"), "digits_cnn")
    rc, err = _certify(capsys, ckpt, out)
    assert rc == 2
    assert "checkpoint_sha256" in _one_line(err)
    assert out.read_text() == interrupted


# ----------------------------------------------------------------------------- resume row checks
@pytest.fixture(scope="module")
def digits():
    from smoothcert.data import load_dataset

    return load_dataset("digits", "test")


def _smooth():
    from smoothcert.noises import make_noise
    from smoothcert.smooth import Smooth

    return Smooth(lambda x: x, 10, make_noise("gaussian", 64, sigma=SIGMA))


def _checker(digits, bilateral=False):
    return certify_job.row_checker(_smooth(), digits, bilateral)


def _row(digits, p_a, p_b=None, prediction=None, radius=None):
    """The row certify writes for input 0 (the certificate's radius unless ``radius``)."""
    label = int(digits.targets[0])
    prediction = label if prediction is None else prediction
    if radius is None:
        radius = 0.0 if prediction == -1 else _smooth().radius(p_a, p_b)
    return certify_job.format_row(0, label, prediction, radius, 1.0, p_a, p_b).split("\t")


def test_row_checker_accepts_the_rows_certify_writes(digits):
    """The resume checker accepts the rows certify writes, abstentions at pA_lower = 0 too."""
    check = _checker(digits)
    for p in (0.5, 0.6, 0.999):  # pA_lower = 1/2 is a prediction with radius 0
        check(_row(digits, p))
    check(_row(digits, 0.0, prediction=-1))
    check(_row(digits, 0.3, prediction=-1))


@pytest.mark.parametrize(
    "cells_of, message",
    [
        (lambda d: _row(d, 0.9)[:6] + ["1.5"] + _row(d, 0.9)[7:], "pA_lower '1.5' is not a prob"),
        (lambda d: _row(d, 0.9)[:6] + ["-0.1"] + _row(d, 0.9)[7:], "pA_lower '-0.1' is not a prob"),
        (lambda d: _row(d, 0.9)[:6] + ["nan"] + _row(d, 0.9)[7:], "pA_lower 'nan' is not a prob"),
        (lambda d: _row(d, 0.9)[:6] + ["x"] + _row(d, 0.9)[7:], "pA_lower 'x' is not a number"),
        (lambda d: _row(d, 0.9, radius=_gauss(0.95)), "is not the certificate's"),
        (lambda d: _row(d, 0.9)[:3] + ["0.321"] + _row(d, 0.9)[4:], "is not the certificate's"),
        (
            lambda d: _row(d, 0.9)[:-1] + [repr(float(np.nextafter(_smooth().radius(0.9), 1)))],
            "is not the certificate's",
        ),
        (lambda d: _row(d, 0.4, radius=0.0), "does not match pA_lower"),
        (lambda d: _row(d, 0.9, prediction=-1), "does not match pA_lower"),
    ],
)
def test_row_checker_rejects_bad_probabilities_and_radii(digits, cells_of, message):
    """The resume checker refuses a row whose pA_lower is not a probability in [0, 1], whose
    prediction disagrees with pA_lower, or whose radius (printed or full precision) is not the
    certificate's at that pA_lower."""
    with pytest.raises(ValueError, match=message):
        _checker(digits)(cells_of(digits))


@pytest.mark.parametrize(
    "p_b, message",
    [
        ("1.2", "pB_upper '1.2' is not a probability"),
        ("-1e-9", "pB_upper '-1e-09' is not a probab"),
        ("0.05", "is not the certificate's"),
    ],
)
def test_row_checker_bilateral_probabilities(digits, p_b, message):
    """With --bilateral the runner-up's bound pB_upper is checked too (in [0, 1], and the radius
    is the bilateral certificate's at both bounds)."""
    good = _row(digits, 0.6, 0.1)
    _checker(digits, True)(good)
    bad = good[:7] + [repr(float(p_b))] + good[8:]
    with pytest.raises(ValueError, match=message):
        _checker(digits, True)(bad)


def test_resume_refuses_a_row_with_a_bad_probability(capsys, checkpoint, tmp_path):
    """A results file whose pA_lower was edited out of [0, 1] is refused on resume (one line,
    nothing written) instead of being kept."""
    out = tmp_path / "edit.tsv"
    rc, err = _certify(capsys, checkpoint, out)
    assert rc == 0, err
    lines = out.read_text().splitlines()[:2]  # as if interrupted after one row
    cells = lines[1].split("\t")
    cells[6] = "1.25"
    out.write_text("\n".join([lines[0], "\t".join(cells)]) + "\n")
    before = out.read_text()
    rc, err = _certify(capsys, checkpoint, out)
    assert rc == 2
    assert "damaged row" in _one_line(err) and "not a probability" in err
    assert out.read_text() == before


# ----------------------------------------------------------------------------- CLI numbers
@pytest.mark.parametrize(
    "command, extra, match",
    [
        ("certify", ["--max", "0"], "--max 0 selects no input"),
        ("predict", ["--max", "0"], "--max 0 selects no input"),
        ("certify", ["--seed", "-1"], "--seed must be an integer in [0, 2^63)"),
        ("predict", ["--seed", "-1"], "--seed must be an integer in [0, 2^63)"),
        ("certify", ["--N", "99999999999999999999"], "--N must be at most 2^40"),
        ("certify", ["--N0", str(2**40 + 1)], "--N0 must be at most 2^40"),
        ("certify", ["--cert-samples", str(2**41)], "--cert-samples must be at most 2^40"),
        ("predict", ["--N", "99999999999999999999"], "--N must be at most 2^40"),
    ],
)
def test_run_options_out_of_range_are_refused(capsys, checkpoint, tmp_path, command, extra, match):
    """--max 0 (a header-only OUTFILE), --seed -1 (refused by radius, accepted here) and an N
    that would never end (--N 99999999999999999999) end in one line, exit 2, no file."""
    out = tmp_path / "o.tsv"
    rc, err = _certify(capsys, checkpoint, out, *extra, command=command)
    assert rc == 2
    assert match in _one_line(err)
    assert not out.exists() and not Path(str(out) + ".config.json").exists()


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--samples", "0"], "--samples must be an integer >= 100, got 0"),
        (["--cert-samples", "5"], "--cert-samples must be an integer >= 100"),
        (["--samples", str(2**40 + 1)], "--samples must be at most 2^40"),
        (["--seed", "-1"], "--seed must be an integer in [0, 2^63)"),
    ],
)
def test_radius_options_out_of_range_are_refused(capsys, extra, match):
    """radius --samples 0 is refused (it silently used the default number of samples)."""
    capsys.readouterr()
    rc = main(
        [
            "radius",
            "--noise",
            "linf-mixed",
            "--dim",
            "8",
            "--k",
            "2",
            "--sigma",
            "1",
            "--norm",
            "linf",
            "--p",
            "0.9",
            *extra,
        ]
    )
    assert rc == 2
    assert match in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--epochs", "0"], "--epochs must be an integer >= 1"),
        (["--seed", "-1"], "--seed must be an integer in"),
    ],
)
def test_train_refuses_zero_epochs(capsys, tmp_path, extra, match):
    """train --epochs 0 is refused instead of printing the paths of files it did not write."""
    capsys.readouterr()
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "digits",
            "digits_cnn",
            str(out),
            "--sigma",
            "0.25",
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2
    assert match in _one_line(captured.err)
    assert captured.out == "" and not out.exists()
