"""Files from elsewhere (checkpoints, ``.pt`` and CIFAR-10 data files, train's resume checkpoint)
are read as data and never run code, unless the user opts in; custom data sets may hold a subset
of a model's classes."""

from __future__ import annotations

import pickle
import warnings
import zipfile

import numpy as np
import pytest
import torch

from smoothcert.cli.main import main
from smoothcert.data import load_dataset
from smoothcert.errors import SmoothCertError
from smoothcert.models import get_architecture, load_checkpoint, save_checkpoint

FAST = [
    "--sigma",
    "0.25",
    "--device",
    "cpu",
    "--N",
    "50",
    "--batch",
    "50",
    "--skip",
    "90",
    "--max",
    "200",
]
FORMATS = {"zip": True, "legacy": False}  # torch.save's _use_new_zipfile_serialization


class _Payload:
    """Pickles as a call of ``exec``: unpickling it writes ``marker`` (the attack of the issue)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('pwned')",)


def _digits_model(num_classes=10):
    torch.manual_seed(0)
    return get_architecture("digits_cnn", "digits", num_classes=num_classes).eval()


def _reference_checkpoint(model, *, module_prefix=False, epoch=90):
    """A checkpoint in the published format: ``{'arch', 'state_dict', 'epoch', 'optimizer'}``
    with keys ``1.*`` (``1.module.*`` as saved from DataParallel) and an SGD state with
    momentum buffers."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    model(torch.rand(2, 1, 8, 8)).sum().backward()
    opt.step()
    sd = model.state_dict()
    if module_prefix:
        sd = {k.replace("1.", "1.module.", 1): v for k, v in sd.items()}
    return {"arch": "digits_cnn", "state_dict": sd, "epoch": epoch, "optimizer": opt.state_dict()}


def _one_line(err: str, *needles) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "digits.pth.tar"
    save_checkpoint(path, _digits_model(), "digits_cnn")
    return path


def _evil_checkpoint(path, marker, fmt="zip"):
    ckpt = _reference_checkpoint(_digits_model())
    ckpt["epoch"] = _Payload(marker)
    torch.save(ckpt, path, _use_new_zipfile_serialization=FORMATS[fmt])
    return path


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("module_prefix", [False, True])
def test_reference_checkpoints_load_without_unpickling_code(tmp_path, fmt, module_prefix):
    """The published checkpoint format (zip and legacy, keys 1.* and 1.module.*, with an SGD
    state) loads on the safe path, without any opt-in, and gives the saved model."""
    model = _digits_model()
    ckpt = _reference_checkpoint(model, module_prefix=module_prefix)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save(ckpt, path, _use_new_zipfile_serialization=FORMATS[fmt])
    torch.load(path, weights_only=True)  # the format itself is plain data
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "digits_cnn" and meta["epoch"] == 90
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_checkpoint_that_runs_code_is_refused(tmp_path, fmt):
    """load_checkpoint refuses (one line naming the risk and the opt-in) a reference-format
    checkpoint whose pickled epoch runs code, and the code does not run; trust=True runs it."""
    marker = tmp_path / "marker"
    path = _evil_checkpoint(tmp_path / "checkpoint.pth.tar", marker, fmt)
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(path)
    _one_line(str(e.value), "arbitrary code", "--trust-checkpoint", "trust=True", "(exec)")
    assert not marker.exists()
    _, meta = load_checkpoint(path, trust=True)  # the documented behaviour: the code runs
    assert marker.read_text() == "pwned" and meta["arch"] == "digits_cnn"


@pytest.mark.parametrize("command", ["certify", "predict"])
def test_cli_refuses_a_checkpoint_that_runs_code(tmp_path, capsys, command):
    """certify and predict exit 2 with one line on a checkpoint whose pickle runs code, and
    the code does not run (it ran with exit 0 before); --trust-checkpoint runs it."""
    marker = tmp_path / "marker"
    path = _evil_checkpoint(tmp_path / "checkpoint.pth.tar", marker)
    out = tmp_path / "out.tsv"
    capsys.readouterr()
    assert main([command, "digits", str(path), str(out), *FAST]) == 2  # exit 0 before
    _one_line(capsys.readouterr().err, "arbitrary code", "--trust-checkpoint")
    assert not marker.exists() and not out.exists()
    assert main([command, "digits", str(path), str(out), *FAST, "--trust-checkpoint"]) == 0
    assert (
        marker.exists() and "--trust-checkpoint" in (tmp_path / "out.tsv.config.json").read_text()
    )


def test_pickled_module_torchscript_and_export_need_trust(tmp_path):
    """Files that are code (a pickled nn.Module, TorchScript, a torch.export archive) load only
    with trust=True; without it the refusal is one line naming the opt-in."""
    model = _digits_model()
    torch.save(model, tmp_path / "whole.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(model, torch.rand(1, 1, 8, 8)), str(tmp_path / "ts.pt"))
    with zipfile.ZipFile(tmp_path / "m.pt2", "w") as zf:  # the layout torch.export.save writes
        zf.writestr("m/archive_format", "pt2")
        zf.writestr("m/models/model.json", "{}")
    for name, needle in (
        ("whole.pt", "torch.nn"),
        ("ts.pt", "TorchScript"),
        ("m.pt2", "torch.export"),
    ):
        with pytest.raises(SmoothCertError) as e:
            load_checkpoint(tmp_path / name)
        _one_line(str(e.value), needle, "--trust-checkpoint")
    x = torch.rand(2, 1, 8, 8)
    for name in ("whole.pt", "ts.pt"):
        loaded, _ = load_checkpoint(tmp_path / name, trust=True)
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_train_resume_refuses_a_checkpoint_that_runs_code(tmp_path, capsys):
    """train's resume reads OUTDIR/checkpoint.pth.tar on the safe path: a crafted one is refused
    in one line and its code does not run."""
    marker = tmp_path / "marker"
    outdir = tmp_path / "run"
    outdir.mkdir()
    _evil_checkpoint(outdir / "checkpoint.pth.tar", marker)
    capsys.readouterr()
    assert (
        main(
            [
                "train",
                "digits",
                "digits_cnn",
                str(outdir),
                "--sigma",
                "0.25",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 2
    )
    _one_line(capsys.readouterr().err, "arbitrary code", "new OUTDIR")
    assert not marker.exists()


# ----------------------------------------------------------------------------- data files
def test_pt_dataset_that_runs_code_is_refused(tmp_path, capsys, checkpoint):
    """A .pt data set whose pickle runs code is refused by certify (exit 2, one line) and by
    load_dataset, and the code does not run; load_dataset(trust=True) runs it."""
    marker = tmp_path / "marker"
    data = load_dataset("digits", "test")
    path = tmp_path / "d.pt"
    torch.save({"x": data.data[:8], "y": data.targets[:8], "note": _Payload(marker)}, path)
    capsys.readouterr()
    assert main(["certify", str(path), str(checkpoint), str(tmp_path / "o.tsv"), *FAST]) == 2
    _one_line(capsys.readouterr().err, "arbitrary code", ".npz")
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(path), "test")
    _one_line(str(e.value), "arbitrary code", "trust=True")
    assert not marker.exists()
    assert len(load_dataset(str(path), "test", trust=True)) == 8 and marker.exists()


def test_cifar10_batch_that_runs_code_is_refused(tmp_path):
    """A CIFAR-10 batch is unpickled as arrays and lists only: a crafted batch is refused in one
    line and its code does not run, while a batch pickled as the published ones are (Python 2,
    numpy.core.multiarray) still loads."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    entry = {
        b"data": rng.integers(0, 256, size=(3, 3072), dtype=np.uint8),
        b"labels": [3, 1, 4],
        b"batch_label": b"testing batch 1 of 1",
        b"filenames": [b"a.png", b"b.png", b"c.png"],
    }
    blob = pickle.dumps(entry, protocol=2)
    blob = blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct" in blob
    (folder / "test_batch").write_bytes(blob)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert [int(y) for y in test.targets] == [3, 1, 4]
    assert torch.equal(test.data[2], torch.from_numpy(entry[b"data"][2].reshape(3, 32, 32)))

    marker = tmp_path / "marker"
    entry[b"batch_label"] = _Payload(marker)
    (folder / "test_batch").write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(SmoothCertError) as e:
        load_dataset("cifar10", "test", root=tmp_path)
    _one_line(str(e.value), "test_batch", "refused global", ".exec")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["certify", "predict"])
def test_data_file_with_a_subset_of_the_classes(tmp_path, capsys, checkpoint, command):
    """A .npz holding only classes 0-4 runs with a 10-class model (it was refused: the number of
    classes was read off the labels), and its results file resumes; a model with fewer outputs
    than the labels need is still refused."""
    data = load_dataset("digits", "test")
    keep = data.targets < 5
    path = tmp_path / "sub.npz"
    np.savez(path, x=data.data[keep].numpy(), y=data.targets[keep].numpy())
    out = tmp_path / "out.tsv"
    args = [command, str(path), str(checkpoint), str(out), *FAST]
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + 3  # indices 0, 90, 180
    assert max(int(r.split("\t")[2]) for r in rows[1:]) >= 5  # a class the file lacks
    assert main(args) == 0, capsys.readouterr().err  # resume: the rows check out
    assert out.read_text().splitlines() == rows

    small = tmp_path / "five.pth.tar"
    save_checkpoint(small, _digits_model(num_classes=5), "digits_cnn")
    np.savez(tmp_path / "all.npz", x=data.data.numpy(), y=data.targets.numpy())
    capsys.readouterr()
    assert (
        main([command, str(tmp_path / "all.npz"), str(small), str(tmp_path / "o2.tsv"), *FAST]) == 2
    )
    _one_line(capsys.readouterr().err, "10 classes")
