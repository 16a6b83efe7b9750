"""``--start`` and ``train_noise`` of certify / predict, and ``smoothcert select`` (choosing the
noise on validation results, reporting the test result of the choice only)."""

import json

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
    assert main(["predict", "digits", checkpoint, str(out), "--sigma", "0.25", "--N", "20",
                 "--batch", "20", "--device", "cpu", "--no-progress", "--skip", "100",
                 "--max", "400", "--start", "50"]) == 0
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


def test_results_file_without_start_and_train_noise_still_resumes(checkpoint, cache_dir,
                                                                  tmp_path):
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
        result = train("digits", "digits_cnn", out, {"noise": "l2-family", "k": 20, "sigma0": 0.25},
                       epochs=1, batch=128, device="cpu", progress=False, verbose=False)
    return str(result.checkpoint)


def test_train_noise_is_the_checkpoints_training_noise(family_checkpoint, checkpoint, cache_dir,
                                                       tmp_path):
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
    assert main(["predict", "digits", family_checkpoint, str(p), "--sigma", "0.25", "--N", "20",
                 "--batch", "20", "--device", "cpu", "--no-progress", "--skip", "500"]) == 0
    assert config_of(p)["train_noise"] == tn
    ref = tmp_path / "ref.tsv"
    assert run_certify(checkpoint, ref, "--skip", "500") == 0
    assert config_of(ref)["train_noise"] is None


def test_train_noise_ignores_malformed_entries():
    """A checkpoint's noise entry that is not plain, valid data gives null (a file's entries
    are checked, never trusted)."""
    from smoothcert.cli.common import train_noise

    good = {"noise": "gaussian", "k": 0.0, "sigma": 0.5, "sigma0": None}
    assert train_noise({"config": good}) == good
    assert train_noise({"noise": {**good, "dim": 64}}) == good
    for bad in ({**good, "noise": "laplace"}, {**good, "sigma": float("nan")},
                {**good, "k": True}, {**good, "sigma": "0.5"}, {**good, "sigma": -1.0},
                {**good, "sigma0": "x"}, "gaussian"):
        assert train_noise({"config": bad}) is None
    assert train_noise({}) is None
