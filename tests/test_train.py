"""Noise-augmented training: reference log and checkpoint, resumption, configuration checks."""

from __future__ import annotations

import math

import pytest
import torch

from smoothcert.cli.main import build_parser, main
from smoothcert.data import load_dataset
from smoothcert.errors import SmoothCertError
from smoothcert.models import load_checkpoint
from smoothcert.training import LOG_HEADER, NoiseSpec, read_log, train

OPTS = [
    "--sigma0",
    "0.25",
    "--batch",
    "64",
    "--lr",
    "0.05",
    "--lr_step_size",
    "1",
    "--gamma",
    "0.5",
    "--no-progress",
]


def _train(outdir, epochs, *extra):
    return main(
        ["train", "digits", "digits_cnn", str(outdir), "--epochs", str(epochs), *OPTS, *extra]
    )


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    assert _train(out, 2) == 0
    return out


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_log_in_reference_format(two_epochs):
    lines = (two_epochs / "log").read_text().splitlines()
    assert lines[0] == LOG_HEADER == "epoch\ttime\tlr\ttrain loss\ttrain acc\ttestloss\ttest acc"
    assert len(lines) == 3 and all(len(line.split("\t")) == 7 for line in lines)
    rows = read_log(two_epochs / "log")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert [r["lr"] for r in rows] == [0.05, 0.025]  # step schedule, logged per epoch
    assert rows[-1]["train acc"] > 50 and rows[-1]["test acc"] > 60  # percent, under noise
    assert rows[-1]["train loss"] < rows[0]["train loss"]


def test_checkpoint_in_reference_format(two_epochs):
    ckpt = _load(two_epochs / "checkpoint.pth.tar")
    assert {"epoch", "arch", "state_dict", "optimizer"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "digits_cnn" and ckpt["dataset"] == "digits"
    assert ckpt["noise"] == {
        "noise": "gaussian",
        "dim": 64,
        "k": 0.0,
        "sigma": 0.25,
        "sigma0": 0.25,
    }
    assert ckpt["config"]["lr"] == 0.05 and ckpt["optimizer"]["state"]  # momentum buffers

    model, meta = load_checkpoint(two_epochs / "checkpoint.pth.tar")
    assert meta["arch"] == "digits_cnn" and meta["epoch"] == 2
    test = load_dataset("digits", "test")
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([int(test[i][1]) for i in range(len(test))])
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.7  # clean accuracy after 2 epochs (chance: 0.1)


def test_resumed_run_reaches_the_same_weights(two_epochs, tmp_path):
    out = tmp_path / "resumed"
    assert _train(out, 1) == 0
    assert _load(out / "checkpoint.pth.tar")["epoch"] == 1
    # a crash after logging epoch 1 but before its checkpoint: the row is dropped, redone
    with open(out / "log", "a") as f:
        f.write("1\t0:00:01\t0.025\t9.9\t9.9\t9.9\t9.9\n")
    assert _train(out, 2) == 0
    a, b = _load(two_epochs / "checkpoint.pth.tar"), _load(out / "checkpoint.pth.tar")
    assert b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for i, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(read_log(out / "log")) == strip(read_log(two_epochs / "log"))


def test_finished_run_is_reused(two_epochs, capsys):
    before = (two_epochs / "checkpoint.pth.tar").read_bytes()
    assert _train(two_epochs, 2) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (two_epochs / "checkpoint.pth.tar").read_bytes() == before


def test_other_configuration_is_refused(two_epochs, capsys):
    before = (two_epochs / "checkpoint.pth.tar").read_bytes()
    rc = main(
        [
            "train",
            "digits",
            "digits_cnn",
            str(two_epochs),
            "--epochs",
            "3",
            "--sigma0",
            "0.5",
            "--batch",
            "64",
            "--lr",
            "0.01",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("smoothcert train: error:")
    assert "sigma: checkpoint 0.25, requested 0.5" in err and "lr: checkpoint 0.05" in err
    assert "lr_step_size" in err and "batch" not in err
    assert (two_epochs / "checkpoint.pth.tar").read_bytes() == before


@pytest.mark.parametrize("noise,k", [("l2-family", 16), ("linf-mixed", 2), ("linf-pure", 4)])
def test_any_noise_family(tmp_path, noise, k):
    result = train(
        "digits",
        "digits_cnn",
        tmp_path,
        NoiseSpec(noise, k=k, sigma0=0.25),
        epochs=1,
        batch=128,
        lr=0.05,
        progress=False,
        verbose=False,
    )
    ckpt = _load(result.checkpoint)
    assert ckpt["noise"]["noise"] == noise and ckpt["noise"]["k"] == k
    assert ckpt["noise"]["sigma"] > 0.25  # matched: sqrt((d-1)/(d-1-k)) sigma0
    assert math.isfinite(result.history[0]["train_loss"])
    assert result.history[0]["test_acc"] > 20


def test_reference_option_spellings():
    args = build_parser().parse_args(
        [
            "train",
            "digits",
            "digits_cnn",
            "out",
            "--noise_sd",
            "0.12",
            "--lr_step_size",
            "5",
            "--weight_decay",
            "0.001",
            "--data_dir",
            "d",
        ]
    )
    assert (args.sigma, args.lr_step_size, args.weight_decay, args.data_dir) == (
        0.12,
        5,
        0.001,
        "d",
    )
    args = build_parser().parse_args(
        [
            "train",
            "digits",
            "digits_cnn",
            "out",
            "--sigma0",
            "0.5",
            "--lr-step-size",
            "7",
            "--weight-decay",
            "0",
        ]
    )
    assert (args.sigma0, args.lr_step_size, args.weight_decay, args.epochs, args.batch) == (
        0.5,
        7,
        0.0,
        90,
        256,
    )


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--epochs", "-1", "--sigma", "0.25"], "epochs"),
        (["--sigma0", "-1"], "sigma0"),
        (["--sigma", "0.25", "--lr", "0"], "lr"),
        (["--noise", "gaussian", "--k", "3", "--sigma", "0.25"], "shape parameter"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, needle):
    rc = main(["train", "digits", "digits_cnn", str(tmp_path / "x"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err
    assert not (tmp_path / "x").exists()


def test_clean_training_spec():
    assert NoiseSpec(sigma=0.0).build(64) is None
    with pytest.raises(SmoothCertError):
        NoiseSpec("nope", sigma=0.1).build(64)
