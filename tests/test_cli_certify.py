"""``smoothcert certify`` / ``smoothcert predict`` end to end on the embedded digits data."""

import json
import shutil

import pytest
from scipy import stats

from smoothcert.analysis import format_radius_cell
from smoothcert.cli.main import main

HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\tpA_lower"  # then radius_exact
FAST = ["--N0", "20", "--N", "200", "--batch", "100", "--skip", "60", "--max", "200"]


@pytest.fixture(scope="module")
def full_run(checkpoint, tmp_path_factory):
    """One uninterrupted run with the FAST options (its file is shared: copy, do not modify)."""
    out = tmp_path_factory.mktemp("full") / "full.tsv"
    assert (
        main(
            ["certify", "digits", checkpoint, str(out), "--sigma", "0.25", "--device", "cpu", *FAST]
        )
        == 0
    )
    return out


def copy_run(full, dest, text=None):
    dest.write_text(full.read_text() if text is None else text)
    shutil.copy(str(full) + ".config.json", str(dest) + ".config.json")
    return dest


def certify(capsys, checkpoint, out, *extra):
    capsys.readouterr()
    rc = main(
        [
            "certify",
            "digits",
            checkpoint,
            str(out),
            "--sigma",
            "0.25",
            "--device",
            "cpu",
            *FAST,
            *extra,
        ]
    )
    return rc, capsys.readouterr().err


def rows(path, drop_time=True):
    lines = path.read_text().splitlines()
    if drop_time:
        lines = ["\t".join(c for j, c in enumerate(line.split("\t")) if j != 5) for line in lines]
    return lines


def test_certify_output_format_and_config(full_run):
    out = full_run
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER + "\tradius_exact"
    assert [int(line.split("\t")[0]) for line in lines[1:]] == [0, 60, 120, 180]
    for line in lines[1:]:
        idx, label, pred, radius, correct, elapsed, p_a, exact = line.split("\t")
        assert int(correct) == int(int(pred) == int(label))
        assert ":" in elapsed  # str(datetime.timedelta)
        p = float(p_a)
        expected = 0.25 * stats.norm.ppf(p) if p >= 0.5 else 0.0
        assert radius == format_radius_cell(float(exact))  # "{:.3}" shape, toward zero
        assert float(exact) == pytest.approx(expected, rel=1e-12)
        assert (int(pred) == -1) == (p < 0.5)
    cfg = json.loads((out.parent / "full.tsv.config.json").read_text())
    for key in [
        "command",
        "dataset",
        "split",
        "checkpoint",
        "checkpoint_sha256",
        "noise",
        "dim",
        "k",
        "sigma",
        "norm",
        "N0",
        "N",
        "alpha",
        "batch",
        "skip",
        "max",
        "seed",
        "certificate",
        "smoothcert_version",
    ]:
        assert key in cfg, key
    assert cfg["dim"] == 64 and cfg["sigma"] == 0.25 and cfg["N"] == 200
    assert cfg["certificate"]["method"] == "closed-form"
    assert cfg["command"].startswith("smoothcert certify digits ")


def test_resume_after_torn_line_reproduces_the_file(capsys, checkpoint, tmp_path, full_run):
    full = full_run
    text = full.read_text()
    cut = text.index("\n", text.index("\n", text.index("\n") + 1) + 1) + 5  # mid row 3
    torn = copy_run(full, tmp_path / "torn.tsv", text[:cut])
    # another batch size and device spelling do not change results
    rc, err = certify(capsys, checkpoint, torn, "--batch", "37")
    assert rc == 0, err
    assert rows(torn) == rows(full)
    before = torn.read_text()
    assert certify(capsys, checkpoint, torn)[0] == 0  # complete: nothing recomputed
    assert torn.read_text() == before


def test_rows_do_not_depend_on_the_other_indices(capsys, checkpoint, tmp_path, full_run):
    a, b = full_run, tmp_path / "b.tsv"
    capsys.readouterr()
    assert (
        main(
            [
                "certify",
                "digits",
                checkpoint,
                str(b),
                "--sigma",
                "0.25",
                "--device",
                "cpu",
                "--N0",
                "20",
                "--N",
                "200",
                "--batch",
                "64",
                "--skip",
                "120",
                "--max",
                "200",
            ]
        )
        == 0
    )
    ra, rb = rows(a)[1:], rows(b)[1:]
    assert rb == [ra[0], ra[2]]  # indices 0 and 120


def test_config_mismatch_refused(capsys, checkpoint, tmp_path, full_run):
    out = copy_run(full_run, tmp_path / "c.tsv")
    before = out.read_text()
    capsys.readouterr()
    rc = main(
        [
            "certify",
            "digits",
            checkpoint,
            str(out),
            "--sigma",
            "0.5",
            "--device",
            "cpu",
            *FAST,
            "--seed",
            "3",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "another configuration" in err and "sigma 0.25 != 0.5" in err
    assert "seed 0 != 3" in err and "use a new OUTFILE" in err
    assert out.read_text() == before


def test_results_without_config_refused(capsys, checkpoint, tmp_path):
    out = tmp_path / "orphan.tsv"
    out.write_text(HEADER + "\n")
    rc, err = certify(capsys, checkpoint, out)
    assert rc == 2 and "config" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, match",
    [
        (["digits", "MISSING.pth", "OUT"], "checkpoint MISSING.pth not found"),
        (
            ["digits", "CKPT", "CKPT/out.tsv"],
            "cannot create the directory",
        ),  # a missing one is made
        (["digits", "CKPT", "OUT", "--noise", "linf-mixed", "--k", "3"], "l2"),
        (["digits", "CKPT", "OUT", "--alpha", "1.5"], "alpha"),
        (["digits", "CKPT", "OUT", "--skip", "0"], "--skip"),
        (["no-such-dataset", "CKPT", "OUT"], "no-such-dataset"),
    ],
)
def test_bad_input_one_line(capsys, checkpoint, tmp_path, args, match):
    args = [
        a.replace("CKPT", checkpoint)
        .replace("OUT", str(tmp_path / "o.tsv"))
        .replace("NODIR", str(tmp_path / "nodir"))
        .replace("MISSING", str(tmp_path / "m"))
        for a in args
    ]
    capsys.readouterr()
    rc = main(["certify", *args[:3], "--sigma", "0.25", "--device", "cpu", *FAST, *args[3:]])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1, err
    assert match.replace("MISSING", str(tmp_path / "m")) in err


def test_linf_mixed_certificate(capsys, checkpoint, tmp_path):
    out = tmp_path / "linf.tsv"
    rc, err = certify(
        capsys,
        checkpoint,
        out,
        "--noise",
        "linf-mixed",
        "--k",
        "8",
        "--norm",
        "linf",
        "--cert-samples",
        "20000",
    )
    assert rc == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER + "\tradius_exact" and len(lines) == 5
    cfg = json.loads((tmp_path / "linf.tsv.config.json").read_text())
    assert cfg["certificate"]["method"] == "monte-carlo"
    assert cfg["certificate"]["samples"] == 20000
    assert cfg["failure_prob"] == pytest.approx(0.001 + 0.001)
    assert "probability" in err
    rc, err = certify(
        capsys,
        checkpoint,
        tmp_path / "bi.tsv",
        "--noise",
        "linf-mixed",
        "--k",
        "8",
        "--norm",
        "linf",
        "--cert-samples",
        "20000",
        "--bilateral",
    )
    assert rc == 2 and "bilateral" in err


def test_bilateral_columns(capsys, checkpoint, tmp_path):
    out = tmp_path / "bi.tsv"
    rc, err = certify(capsys, checkpoint, out, "--bilateral")
    assert rc == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == HEADER + "\tpB_upper\tradius_exact"
    for line in lines[1:]:
        cells = line.split("\t")
        p_a, p_b = float(cells[6]), float(cells[7])
        if int(cells[2]) >= 0:
            binary = 0.25 * stats.norm.ppf(p_a) if p_a >= 0.5 else 0.0
            bi = 0.5 * 0.25 * (stats.norm.ppf(p_a) - stats.norm.ppf(p_b))
            assert float(cells[8]) == pytest.approx(max(binary, bi), rel=1e-12)
            assert cells[3] == format_radius_cell(float(cells[8]))


def test_predict_end_to_end_and_resume(capsys, checkpoint, tmp_path):
    out = tmp_path / "pred.tsv"
    argv = [
        "predict",
        "digits",
        checkpoint,
        str(out),
        "--sigma",
        "0.25",
        "--device",
        "cpu",
        "--N",
        "200",
        "--batch",
        "100",
        "--skip",
        "60",
        "--max",
        "200",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "idx\tlabel\tpredict\tcorrect\ttime"
    assert [line.split("\t")[0] for line in lines[1:]] == ["0", "60", "120", "180"]
    full = rows(out, drop_time=False)
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:3])
    assert main(argv) == 0
    assert [r.split("\t")[:4] for r in rows(out, drop_time=False)] == [
        r.split("\t")[:4] for r in full
    ]
    capsys.readouterr()
    assert main(argv[:4] + ["--sigma0", "0.3"] + argv[6:]) == 2
    assert "sigma 0.25 != 0.3" in capsys.readouterr().err
