"""``--start`` and ``train_noise`` of certify / predict, and ``smoothcert select`` (choosing the
noise on validation results, reporting the test result of the choice only)."""

import json

import numpy as np
import pytest
import torch

from smoothcert.cli.main import main

FAST = ["--N0", "10", "--N", "40", "--batch", "50", "--device", "cpu", "--no-progress"]


def run_certify(checkpoint, out, *extra):
    return main(["certify", "digits", checkpoint, str(out), "--sigma", "0.25", *FAST, *extra])


def indices_of(path):
    return [int(line.split("\t")[0]) for line in path.read_text().splitlines()[1:]]


def config_of(path):
    return json.loads((path.parent / (path.name + ".config.json")).read_text())


# ----------------------------------------------------------------------------- --start
def test_start_gives_disjoint_indices_and_is_recorded(checkpoint, cache_dir, tmp_path):
    """--start S makes certify run range(S, max, skip) and records it in the configuration and
    the command line, so validation (start 6) and test (start 0) of one split are disjoint."""
    val, test = tmp_path / "val.tsv", tmp_path / "test.tsv"
    assert run_certify(checkpoint, val, "--skip", "12", "--max", "60", "--start", "6") == 0
    assert run_certify(checkpoint, test, "--skip", "12", "--max", "60") == 0
    assert indices_of(val) == [6, 18, 30, 42, 54]
    assert indices_of(test) == [0, 12, 24, 36, 48]
    assert config_of(val)["start"] == 6 and "--start 6" in config_of(val)["command"]
    assert config_of(test)["start"] == 0 and "--start" not in config_of(test)["command"]
    # resuming with another start is another run: refused
    assert run_certify(checkpoint, val, "--skip", "12", "--max", "60", "--start", "7") == 2


def test_predict_start(checkpoint, cache_dir, tmp_path):
    """predict takes --start too (the same selection of indices as certify)."""
    out = tmp_path / "p.tsv"
    assert (
        main(
            [
                "predict",
                "digits",
                checkpoint,
                str(out),
                "--sigma",
                "0.25",
                "--N",
                "20",
                "--batch",
                "20",
                "--device",
                "cpu",
                "--no-progress",
                "--skip",
                "100",
                "--max",
                "400",
                "--start",
                "50",
            ]
        )
        == 0
    )
    assert indices_of(out) == [50, 150, 250, 350]
    assert config_of(out)["start"] == 50


@pytest.mark.parametrize("start", ["-1", "length", "5000"])
def test_start_out_of_range_is_a_one_line_error(checkpoint, cache_dir, tmp_path, capsys, start):
    """--start outside [0, length of the split) is refused with one line and no file."""
    from smoothcert.data import load_dataset

    if start == "length":
        start = str(len(load_dataset("digits", "test")))
    capsys.readouterr()
    assert run_certify(checkpoint, tmp_path / "x.tsv", "--start", start) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--start" in err
    assert not (tmp_path / "x.tsv").exists()


def test_results_file_without_start_and_train_noise_still_resumes(checkpoint, cache_dir, tmp_path):
    """A results file written before ``start`` and ``train_noise`` existed resumes (its runs
    began at index 0 and its checkpoint is pinned by checkpoint_sha256) instead of being refused
    as made with another configuration."""
    out = tmp_path / "old.tsv"
    assert run_certify(checkpoint, out, "--skip", "30", "--max", "90") == 0
    cpath = tmp_path / "old.tsv.config.json"
    cfg = json.loads(cpath.read_text())
    del cfg["start"], cfg["train_noise"]
    cpath.write_text(json.dumps(cfg))
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-1]) + "\n")  # one row missing: to be computed on resume
    assert run_certify(checkpoint, out, "--skip", "30", "--max", "90") == 0
    assert indices_of(out) == [0, 30, 60]
    # but an old file resumed with another start is refused (absent start means 0)
    assert run_certify(checkpoint, out, "--skip", "30", "--max", "90", "--start", "1") == 2


# ----------------------------------------------------------------------------- train_noise
@pytest.fixture(scope="module")
def family_checkpoint(tmp_path_factory, cache_dir):
    """A digits_cnn trained one epoch by smoothcert.training.train with the l2-family noise."""
    from smoothcert.training import train

    out = tmp_path_factory.mktemp("trained")
    with torch.random.fork_rng():
        result = train(
            "digits",
            "digits_cnn",
            out,
            {"noise": "l2-family", "k": 20, "sigma0": 0.25},
            epochs=1,
            batch=128,
            device="cpu",
            progress=False,
            verbose=False,
        )
    return str(result.checkpoint)


def test_train_noise_is_the_checkpoints_training_noise(
    family_checkpoint, checkpoint, cache_dir, tmp_path
):
    """certify and predict record in OUTFILE.config.json the noise the checkpoint was trained
    with (read from the checkpoint), and null for a checkpoint that does not record it, so that
    matched and crossed runs can be told apart from the files alone."""
    import math

    sigma = math.sqrt(63 / (63 - 20)) * 0.25
    out = tmp_path / "c.tsv"
    assert run_certify(family_checkpoint, out, "--skip", "500") == 0
    tn = config_of(out)["train_noise"]
    assert tn["noise"] == "l2-family" and tn["k"] == 20 and tn["sigma0"] == 0.25
    assert tn["sigma"] == pytest.approx(sigma, rel=1e-12)
    assert config_of(out)["noise"] == "gaussian"  # certified with another noise: crossed
    p = tmp_path / "p.tsv"
    assert (
        main(
            [
                "predict",
                "digits",
                family_checkpoint,
                str(p),
                "--sigma",
                "0.25",
                "--N",
                "20",
                "--batch",
                "20",
                "--device",
                "cpu",
                "--no-progress",
                "--skip",
                "500",
            ]
        )
        == 0
    )
    assert config_of(p)["train_noise"] == tn
    ref = tmp_path / "ref.tsv"
    assert run_certify(checkpoint, ref, "--skip", "500") == 0
    assert config_of(ref)["train_noise"] is None


def test_train_noise_ignores_malformed_entries():
    """A checkpoint's noise entry that is not plain, valid data gives null (a file's entries
    are checked, never trusted)."""
    from smoothcert.models import train_noise

    good = {"noise": "gaussian", "k": 0.0, "sigma": 0.5, "sigma0": None}
    assert train_noise({"config": good}) == good
    assert train_noise({"noise": {**good, "dim": 64}}) == good
    for bad in (
        {**good, "noise": "laplace"},
        {**good, "sigma": float("nan")},
        {**good, "k": True},
        {**good, "sigma": "0.5"},
        {**good, "sigma": -1.0},
        {**good, "sigma0": "x"},
        "gaussian",
    ):
        assert train_noise({"config": bad}) is None
    assert train_noise({}) is None


# ----------------------------------------------------------------------------- select
def certify_config(sigma, *, start=6, norm="l2", sha="a" * 64, **extra):
    cfg = {
        "command": "smoothcert certify ...",
        "dataset": "digits",
        "split": "test",
        "checkpoint": "model.pth",
        "checkpoint_sha256": sha,
        "train_noise": None,
        "noise": "gaussian",
        "dim": 64,
        "k": 0.0,
        "sigma": sigma,
        "sigma0": None,
        "norm": norm,
        "N0": 100,
        "N": 1000,
        "alpha": 0.001,
        "bilateral": False,
        "skip": 12,
        "start": start,
        "max": -1,
        "seed": 0,
        "certificate": {
            "noise": "gaussian",
            "dim": 64,
            "k": 0.0,
            "sigma": sigma,
            "norm": norm,
            "method": "closed-form",
            "failure_prob": 0.0,
        },
    }
    cfg.update(extra)
    return cfg


def write_results(path, radii, config, idx=None, correct=None):
    """A certify results file (certify's own header and row writer): row i is correct with
    radius radii[i] (None: a wrong prediction, radius 0)."""
    from smoothcert.jobs import certify

    idx = (
        list(range(config["start"], config["start"] + 12 * len(radii), 12)) if idx is None else idx
    )
    lines = ["\t".join(certify.header(False))]
    for i, r in zip(idx, radii, strict=True):
        label = i % 10
        pred = label if r is not None else (label + 1) % 10
        lines.append(certify.format_row(i, label, pred, 0.0 if r is None else r, 0.01, 0.9))
    path.write_text("\n".join(lines) + "\n")
    (path.parent / (path.name + ".config.json")).write_text(json.dumps(config))
    return str(path)


#: validation radii of three configurations (None: wrong): at R = 0.5, A 1/4, B 2/4, C 0/4;
#: over [0, 0.5], A (0.2 + 1 + 0.6) / 4 = 0.45, B 2/4 = 0.5, C 4 * 0.6 / 4 = 0.6
VAL = {"A": [0.1, 0.6, 0.3, None], "B": [0.7, 0.8, None, None], "C": [0.3, 0.3, 0.3, 0.3]}
SIGMA = {"A": 0.12, "B": 0.25, "C": 0.5}


@pytest.fixture
def val_files(tmp_path):
    return [
        write_results(tmp_path / f"val_{k}.tsv", r, certify_config(SIGMA[k]))
        for k, r in VAL.items()
    ]


@pytest.fixture
def test_files(tmp_path):
    """Test partners (start 0): A 7/8 at any radius <= 0.9, B 2/8, C 1/8."""
    radii = {"A": [0.9] * 7 + [None], "B": [0.9] * 2 + [None] * 6, "C": [0.9] + [None] * 7}
    return [
        write_results(tmp_path / f"test_{k}.tsv", r, certify_config(SIGMA[k], start=0))
        for k, r in radii.items()
    ]


def test_select_chooses_the_best_at_a_radius_and_on_a_range(val_files):
    """select picks the file with the highest certified accuracy at R, and with the highest
    exact mean certified accuracy over [LO, HI] (hand-computed), which differ here."""
    from smoothcert.selection import select

    at = select(val_files, radius=0.5)
    assert at.chosen.path == val_files[1]
    assert [c.score for c in at.candidates] == [0.25, 0.5, 0.0]
    rng = select(val_files, radii=(0.0, 0.5))
    assert rng.chosen.path == val_files[2]
    assert [c.score for c in rng.candidates] == pytest.approx([0.45, 0.5, 0.6], rel=1e-14)


def test_mean_certified_accuracy_is_the_exact_integral(tmp_path):
    """The range criterion is the exact integral of the certified-accuracy step function over
    [LO, HI] divided by the width (not a grid): wrong rows add nothing, a radius beyond HI adds
    one full image."""
    from smoothcert.analysis import certified_accuracy, read_results
    from smoothcert.selection import mean_certified_accuracy

    path = write_results(tmp_path / "r.tsv", [0.1, 0.35, 2.0, None, 0.0], certify_config(0.25))
    table = read_results(path)
    # over [0.2, 0.6]: 0 + 0.15/0.4 + 1 + 0 + 0 = 1.375, / 5 images
    assert mean_certified_accuracy(table, 0.2, 0.6) == pytest.approx(1.375 / 5, rel=1e-14)
    # the same as a (slow) midpoint sum of the step function on a fine grid, to 1/grid
    grid = 0.2 + 0.4 * (np.arange(4000) + 0.5) / 4000
    assert mean_certified_accuracy(table, 0.2, 0.6) == pytest.approx(
        certified_accuracy(table, grid).mean(), abs=1e-3
    )


def test_ties_go_to_the_first_file_and_are_reported(val_files, capsys):
    """Tied validation scores are broken toward the file given first, deterministically, and
    the tied files are reported (A and B both certify 2/4 at R = 0.2)."""
    from smoothcert.selection import select

    first = select(val_files[:2], radius=0.2)
    assert first.chosen.path == val_files[0] and first.ties == val_files[:2]
    again = select([val_files[1], val_files[0]], radius=0.2)
    assert again.chosen.path == val_files[1] and again.ties == [val_files[1], val_files[0]]
    assert main(["select", *val_files[:2], "--radius", "0.2"]) == 0
    assert (
        f"tied with the chosen file (first given wins): {val_files[1]}" in capsys.readouterr().out
    )


def test_only_the_chosen_configurations_test_score_is_computed(
    val_files, test_files, capsys, monkeypatch
):
    """With --test, the test file of the chosen configuration is the only test file scored and
    printed (with n, one image = 1/n and a 95% Clopper-Pearson interval): the scores of the
    configurations not chosen are never computed, so they cannot steer the choice."""
    from scipy import stats

    from smoothcert import selection

    scored = []
    real = selection.Criterion.score
    monkeypatch.setattr(
        selection.Criterion,
        "score",
        lambda self, table: scored.append(table.path) or real(self, table),
    )
    result = selection.select(val_files, radius=0.5, test_files=test_files)
    assert result.chosen.path == val_files[1] and result.test.path == test_files[1]
    assert scored == [*val_files, test_files[1]]
    t = result.test_result()
    assert (t["score"], t["n"], t["count"], t["one_image"]) == (0.25, 8, 2, 0.125)
    low, high = stats.beta.ppf(0.025, 2, 7), stats.beta.ppf(0.975, 3, 6)
    assert t["ci"] == pytest.approx([low, high], rel=1e-9)
    assert t["ci_method"] == "clopper-pearson"
    capsys.readouterr()
    assert main(["select", *val_files, "--radius", "0.5", "--test", *test_files]) == 0
    out = capsys.readouterr().out
    assert "test: 0.2500 (2/8 images; one image = 0.1250" in out
    assert "0.8750" not in out and "0.1250 (" not in out  # A's and C's test scores
    assert main(["select", *val_files, "--radii", "0:0.5", "--test", *test_files, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chosen"]["file"] == val_files[2] and data["test"]["file"] == test_files[2]
    assert data["test"]["score"] == pytest.approx(1 / 8) and data["test"]["n"] == 8
    assert data["criterion"]["kind"] == "range" and data["test"]["ci_method"] == "hoeffding"
    assert 7 / 8 not in [s["score"] for s in data["validation"]["scores"]]


def test_old_file_without_radius_exact_is_counted_as_analyze_counts_it(tmp_path):
    """A results file of an older smoothcert (radius printed to nearest, no radius_exact) is
    counted with the low end of its printed radius, as analyze counts it: a printed 0.25 may be
    0.2495 and is not counted at R = 0.25."""
    from smoothcert.selection import select

    path = tmp_path / "old.tsv"
    path.write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
        "6\t6\t6\t0.25\t1\t0:00:01\n18\t8\t8\t0.5\t1\t0:00:01\n"
    )
    (tmp_path / "old.tsv.config.json").write_text(json.dumps(certify_config(0.25)))
    assert select([str(path)], radius=0.25).chosen.score == 0.5
    assert select([str(path)], radii=(0.0, 0.5)).chosen.score == pytest.approx(
        (0.2495 + 0.4995) / 0.5 / 2, rel=1e-12
    )  # each printed radius at its low end


def one_line_error(capsys, argv):
    capsys.readouterr()
    assert main(["select", *argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and err.startswith("smoothcert select: error: ")
    assert captured.out == ""
    return err


def test_refusals_are_one_line_errors(val_files, test_files, tmp_path, capsys):
    """select refuses, with a one-line error (exit 2) and no score, what would make the choice
    or its test number unfair or meaningless: mixed norms, other images, a repeated idx, a file
    without configuration, test images that are validation images, a validation file without
    exactly one test partner, a bad --radii."""
    linf = write_results(tmp_path / "linf.tsv", VAL["A"], certify_config(0.3, norm="linf"))
    assert "differ in norm" in one_line_error(capsys, [val_files[0], linf, "--radius", "0"])
    other = write_results(
        tmp_path / "other.tsv", VAL["A"], certify_config(0.3), idx=[6, 18, 30, 43]
    )
    assert "different images" in one_line_error(capsys, [val_files[0], other, "--radius", "0"])
    dup = write_results(tmp_path / "dup.tsv", VAL["A"], certify_config(0.3), idx=[6, 18, 30, 30])
    assert "idx 30 repeats" in one_line_error(capsys, [dup, "--radius", "0"])
    bare = tmp_path / "bare.tsv"
    bare.write_text((tmp_path / "val_A.tsv").read_text())
    assert "no configuration" in one_line_error(capsys, [str(bare), "--radius", "0"])
    # a test file on validation images (start 6, one shared idx)
    overlap = write_results(
        tmp_path / "ov.tsv", [0.9] * 4, certify_config(SIGMA["B"], start=0), idx=[0, 12, 24, 30]
    )
    err = one_line_error(
        capsys, [*val_files, "--radius", "0.5", "--test", test_files[0], overlap, test_files[2]]
    )
    assert "shares 1 image(s)" in err and "ov.tsv" in err and "val_B.tsv" in err
    # no partner: B's test file run with another checkpoint
    moved = write_results(
        tmp_path / "moved.tsv", [0.9] * 8, certify_config(SIGMA["B"], start=0, sha="b" * 64)
    )
    err = one_line_error(
        capsys, [*val_files, "--radius", "0.5", "--test", test_files[0], moved, test_files[2]]
    )
    assert "no test file has the configuration of" in err and "val_B.tsv" in err
    err = one_line_error(capsys, [*val_files, "--radius", "0.5", "--test", *test_files[:2]])
    assert "val_C.tsv" in err
    err = one_line_error(capsys, [val_files[0], "--radius", "0.5", "--test", val_files[0]])
    assert "as validation and as test file" in err
    for bad in ("0.5", "1:0.5", "a:b", "0:inf", "-1:1"):
        assert "--radii" in one_line_error(capsys, [*val_files, f"--radii={bad}"])
    assert "radius" in one_line_error(capsys, [*val_files, "--radius", "-1"])
