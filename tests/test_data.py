"""Data sets: the embedded digits split, CIFAR-10 / ImageNet layouts, custom files, errors."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from smoothcert.data import DATASETS, dataset_normalization, load_dataset
from smoothcert.data import transforms as T
from smoothcert.errors import SmoothCertError


def _one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg and "Traceback" not in msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


# ----------------------------------------------------------------------------- digits
def test_digits_split_is_fixed():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    for ds in (train, test):
        assert ds.name == "digits" and ds.num_classes == 10 and ds.input_shape == (1, 8, 8)
        x, y = ds[0]
        assert x.dtype == torch.float32 and x.shape == (1, 8, 8) and isinstance(y, int)
        assert float(ds.data.min()) == 0.0 and float(ds.data.max()) == 1.0
    # stratified: every class 35..37 times in the test split
    counts = torch.bincount(test.targets, minlength=10)
    assert counts.sum() == 360 and counts.min() >= 35 and counts.max() <= 37
    # never changes: a fingerprint of the test images and labels, and no overlap with train
    h = hashlib.sha256(test.data.numpy().tobytes() + test.targets.numpy().tobytes()).hexdigest()
    again = load_dataset("digits", "test")
    assert torch.equal(again.data, test.data) and torch.equal(again.targets, test.targets)
    assert h == _DIGITS_TEST_SHA
    from sklearn.datasets import load_digits

    n = load_digits().images.shape[0]
    assert len(train) + len(test) == n


_DIGITS_TEST_SHA = "a9657651e71ec0cb459303feaa475999889fb1bc88180c59f7ee06904a648c61"


def test_digits_normalization_constants_match_train_split():
    x = load_dataset("digits", "train").data
    means, stds = dataset_normalization("digits")
    assert means == (round(float(x.mean()), 4),) and stds == (round(float(x.std()), 4),)


def test_reference_normalization_constants():
    assert DATASETS == ("digits", "digits32", "cifar10", "imagenet")
    assert dataset_normalization("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert dataset_normalization("imagenet") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(SmoothCertError):
        dataset_normalization("mnist")


def test_bad_split_and_unknown_name():
    with pytest.raises(SmoothCertError) as e:
        load_dataset("digits", "validation")
    _one_line_error(e, "validation")
    with pytest.raises(SmoothCertError) as e:
        load_dataset("mnist", "test")
    _one_line_error(e, "mnist", "digits")


# ----------------------------------------------------------------------------- cifar10
def _write_cifar(folder, n_train=4, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {}
    for name in names:
        n = n_test if name == "test_batch" else n_train
        entry = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
            b"batch_label": name.encode(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        batches[name] = entry
    return batches


@pytest.mark.parametrize("point_at", ["parent", "folder", "env"])
def test_cifar10_from_fake_batches(tmp_path, monkeypatch, point_at):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py")
    root = {"parent": tmp_path, "folder": tmp_path / "cifar-10-batches-py", "env": None}[point_at]
    if point_at == "env":
        monkeypatch.setenv("CIFAR10_DIR", str(tmp_path))
    test = load_dataset("cifar10", "test", root=root)
    assert len(test) == 3 and test.num_classes == 10 and test.input_shape == (3, 32, 32)
    x, y = test[1]
    ref = batches["test_batch"]
    expected = torch.from_numpy(ref[b"data"][1].reshape(3, 32, 32).astype(np.float32) / 255)
    assert torch.allclose(x, expected) and y == ref[b"labels"][1]
    train = load_dataset("cifar10", "train", root=root)
    assert len(train) == 20
    torch.manual_seed(0)
    xs = torch.stack([train[0][0] for _ in range(20)])
    assert xs.shape == (20, 3, 32, 32) and xs.min() >= 0 and xs.max() <= 1
    assert not all(torch.equal(xs[0], xi) for xi in xs)  # random crop / flip


def test_cifar10_missing_and_corrupt(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR10_DIR", raising=False)
    with pytest.raises(SmoothCertError) as e:
        load_dataset("cifar10", "test", root=tmp_path / "nowhere")
    _one_line_error(e, tmp_path / "nowhere" / "cifar-10-batches-py", "CIFAR10_DIR")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SmoothCertError) as e:
        load_dataset("cifar10", "train")
    _one_line_error(e, "data/cifar10", "download CIFAR-10")
    folder = tmp_path / "c" / "cifar-10-batches-py"
    _write_cifar(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(SmoothCertError) as e:
        load_dataset("cifar10", "train", root=folder)
    _one_line_error(e, "data_batch_3")
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(X")  # truncated pickle
    with pytest.raises(SmoothCertError) as e:
        load_dataset("cifar10", "test", root=folder)
    _one_line_error(e, "test_batch")


# ----------------------------------------------------------------------------- image folders
def _write_images(folder, classes, n, size, mode="RGB", ext=".JPEG", seed=0):
    rng = np.random.default_rng(seed)
    for cls in classes:
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            Image.fromarray(arr, mode=mode).save(folder / cls / f"img{i}{ext}")


def test_imagenet_image_folder(tmp_path, monkeypatch):
    _write_images(tmp_path / "train", ["n01", "n02", "n03"], 2, (300, 260))
    _write_images(tmp_path / "val", ["n02", "n03"], 1, (250, 400))
    test = load_dataset("imagenet", "test", root=tmp_path)
    assert test.input_shape == (3, 224, 224) and test.num_classes == 1000
    assert len(test) == 2 and [y for _, y in test] == [1, 2]  # indices of the train classes
    x, _ = test[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path))
    train = load_dataset("imagenet", "train")
    assert len(train) == 6 and train[5][1] == 2 and train[0][0].shape == (3, 224, 224)


def test_imagenet_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    with pytest.raises(SmoothCertError) as e:
        load_dataset("imagenet", "test", root=tmp_path / "in")
    _one_line_error(e, tmp_path / "in", "IMAGENET_DIR")
    (tmp_path / "in" / "train").mkdir(parents=True)
    with pytest.raises(SmoothCertError) as e:
        load_dataset("imagenet", "test", root=tmp_path / "in")
    _one_line_error(e, tmp_path / "in" / "val")


def test_custom_image_folder(tmp_path):
    _write_images(tmp_path / "gray", ["a", "b"], 3, (10, 6), mode="L", ext=".png")
    ds = load_dataset(str(tmp_path / "gray"), "test")
    assert ds.input_shape == (1, 6, 10) and ds.num_classes == 2 and len(ds) == 6
    x, y = ds[4]
    assert x.shape == (1, 6, 10) and y == 1
    arr = np.asarray(Image.open(tmp_path / "gray" / "b" / "img1.png"), dtype=np.float32) / 255
    assert torch.allclose(x[0], torch.from_numpy(arr))
    # with train/ and test/ subfolders the split picks one
    _write_images(tmp_path / "split" / "train", ["a", "b"], 2, (5, 5), ext=".png")
    _write_images(tmp_path / "split" / "test", ["b"], 1, (5, 5), ext=".png")
    assert len(load_dataset(str(tmp_path / "split"), "train")) == 4
    test = load_dataset(str(tmp_path / "split"), "test")
    assert len(test) == 1 and test[0][1] == 1 and test.input_shape == (3, 5, 5)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "empty"), "test")
    _one_line_error(e, "no images")


# ----------------------------------------------------------------------------- tensor files
def test_npz_uint8_nhwc_and_splits(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(5, 7, 6, 3), dtype=np.uint8)
    y = np.array([0, 2, 1, 2, 0])
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    ds = load_dataset(str(tmp_path / "d.npz"), "test")
    assert ds.input_shape == (3, 7, 6) and ds.num_classes == 3 and len(ds) == 5
    x0, y0 = ds[3]
    assert torch.allclose(x0, torch.from_numpy(x[3].transpose(2, 0, 1) / 255).float())
    assert y0 == 2
    np.savez(tmp_path / "s.npz", x_train=x[:3], y_train=y[:3], x_test=x[3:], y_test=y[3:])
    assert len(load_dataset(str(tmp_path / "s.npz"), "train")) == 3
    test = load_dataset(str(tmp_path / "s.npz"), "test")
    assert len(test) == 2 and test.num_classes == 3  # classes over both splits


def test_pt_float_nchw_dict_and_tuple(tmp_path):
    x = torch.rand(4, 1, 5, 5)
    y = torch.tensor([1, 0, 1, 3])
    torch.save({"x": x, "y": y}, tmp_path / "d.pt")
    torch.save((x, y), tmp_path / "t.pt")
    for name in ("d.pt", "t.pt"):
        ds = load_dataset(str(tmp_path / name), "train")
        assert ds.input_shape == (1, 5, 5) and ds.num_classes == 4
        assert torch.equal(ds[2][0], x[2]) and ds[3][1] == 3


def test_tensor_file_errors(tmp_path):
    np.savez(tmp_path / "k.npz", a=np.zeros((2, 3, 4, 4)), b=np.zeros(2))
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "k.npz"), "test")
    _one_line_error(e, "x/y", "a, b")
    np.savez(tmp_path / "r.npz", x=np.full((2, 3, 4, 4), 2.0), y=np.zeros(2, dtype=int))
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "r.npz"), "test")
    _one_line_error(e, "[0, 1]")
    np.savez(tmp_path / "amb.npz", x=np.zeros((2, 3, 4, 3), np.uint8), y=np.zeros(2, dtype=int))
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "amb.npz"), "test")
    _one_line_error(e, "channel axis")
    np.savez(tmp_path / "n.npz", x=np.zeros((2, 3, 8, 8), np.uint8), y=np.zeros(3, dtype=int))
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "n.npz"), "test")
    _one_line_error(e, "labels")
    (tmp_path / "bad.npz").write_bytes(b"not a zip file at all")
    (tmp_path / "bad.pt").write_bytes(b"\x00\x01garbage")
    for name in ("bad.npz", "bad.pt"):
        with pytest.raises(SmoothCertError) as e:
            load_dataset(str(tmp_path / name), "test")
        _one_line_error(e, tmp_path / name)
    with pytest.raises(SmoothCertError) as e:
        load_dataset(str(tmp_path / "missing.npz"), "test")
    _one_line_error(e, "missing.npz", "not found")


# ----------------------------------------------------------------------------- transforms
def test_transforms_shapes_and_determinism():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), np.uint8))
    out = T.Compose([T.Resize(256), T.CenterCrop(224), T.to_tensor])(img)
    assert out.shape == (3, 224, 224)
    assert T.Resize(256)(img).size == (341, 256)
    torch.manual_seed(3)
    a = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.to_tensor])(img)
    torch.manual_seed(3)
    b = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.to_tensor])(img)
    assert a.shape == (3, 224, 224) and torch.equal(a, b)
    x = torch.rand(3, 32, 32)
    crops = [T.RandomCrop(32, padding=4)(x) for _ in range(30)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    # every crop is a shifted copy of x: some pixels equal, borders zero-padded
    assert any((c == 0).any() for c in crops)
    assert torch.equal(T.RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
