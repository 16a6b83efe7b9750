"""Architectures and checkpoints in the reference (Cohen et al.) format."""

from __future__ import annotations

import warnings

import pytest
import torch

from smoothcert.errors import SmoothCertError
from smoothcert.models import (
    ARCHITECTURES,
    DataParallel,
    InputCenterLayer,
    NormalizeLayer,
    get_architecture,
    load_checkpoint,
    save_checkpoint,
)

# Small inputs keep the tests fast (ResNet-50 pools adaptively).
INPUTS = {
    "cifar_resnet20": (3, 32, 32),
    "cifar_resnet110": (3, 32, 32),
    "resnet50": (3, 64, 64),
    "digits_cnn": (1, 8, 8),
    "imagenet32_resnet110": (3, 32, 32),
    "digits32_cnn": (3, 32, 32),
}
DATASET = {
    "cifar_resnet20": "cifar10",
    "cifar_resnet110": "cifar10",
    "resnet50": "imagenet",
    "digits_cnn": "digits",
    "imagenet32_resnet110": "imagenet32",
    "digits32_cnn": "digits32",
}
CLASSES = {
    "cifar_resnet20": 10,
    "cifar_resnet110": 10,
    "resnet50": 1000,
    "digits_cnn": 10,
    "digits32_cnn": 10,
    "imagenet32_resnet110": 1000,
}


def _message(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


def _randomize_bn(model):
    """Non-trivial running statistics, so that a reload that lost them would show."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One reference-format checkpoint per architecture: (path, model, input batch)."""
    out = {}
    folder = tmp_path_factory.mktemp("ckpt")
    for arch in ARCHITECTURES:
        torch.manual_seed(0)
        model = _randomize_bn(get_architecture(arch, DATASET[arch])).eval()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        path = folder / f"{arch}.pth.tar"
        save_checkpoint(path, model, arch, epoch=3, optimizer=opt, note="hi")
        x = torch.rand(2, *INPUTS[arch], generator=torch.Generator().manual_seed(1))
        out[arch] = (path, model, x)
    return out


# ----------------------------------------------------------------------------- layouts
def test_normalize_layer_is_not_in_state_dict():
    layer = NormalizeLayer([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    assert layer.state_dict() == {}
    x = torch.rand(2, 3, 4, 5)
    ref = (x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 2.0]
    ).view(1, 3, 1, 1)
    assert torch.allclose(layer(x), ref)
    center = InputCenterLayer([0.5, 0.25, 0.0])
    assert center.state_dict() == {} and torch.allclose(
        center(x), x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)
    )
    with pytest.raises(SmoothCertError):
        NormalizeLayer([0.1, 0.2], [0.1])


def test_reference_key_layouts():
    keys = list(get_architecture("cifar_resnet110", "cifar10").state_dict())
    assert keys[0] == "1.conv1.weight" and keys[-1] == "1.fc.bias"
    assert "1.layer1.17.bn2.running_var" in keys and "1.layer2.0.downsample.0.weight" in keys
    assert "1.layer3.0.downsample.1.num_batches_tracked" in keys
    assert "1.layer1.0.downsample.0.weight" not in keys and "1.layer1.18.conv1.weight" not in keys
    assert len(keys) == 668
    assert len(get_architecture("cifar_resnet20", "cifar10").state_dict()) == 128
    with torch.device("meta"):
        r50 = get_architecture("resnet50", "imagenet")
        r110 = get_architecture("cifar_resnet110", "cifar10")
    assert isinstance(r50[1], torch.nn.DataParallel)
    keys = list(r50.state_dict())
    assert keys[0] == "1.module.conv1.weight" and keys[-1] == "1.module.fc.bias"
    assert "1.module.layer4.2.bn3.running_mean" in keys
    assert "1.module.layer1.0.downsample.1.weight" in keys and len(keys) == 320
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032  # torchvision's resnet50
    assert sum(p.numel() for p in r110.parameters()) == 1_730_714
    assert all(k.startswith("1.") for k in get_architecture("digits_cnn", "digits").state_dict())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_shapes(arch, trained):
    _, model, x = trained[arch]
    with torch.no_grad():
        assert model(x).shape == (2, CLASSES[arch])


def test_unknown_arch_or_dataset():
    with pytest.raises(SmoothCertError) as e:
        get_architecture("vgg16", "cifar10")
    _message(e, "vgg16", "cifar_resnet110", "digits_cnn")
    with pytest.raises(SmoothCertError) as e:
        get_architecture("cifar_resnet20", "cifar100")
    _message(e, "cifar100")


def test_dataparallel_runs_on_cpu_tensors(trained):
    _, model, x = trained["resnet50"]
    assert isinstance(model[1], DataParallel) and next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        assert model(x).shape == (2, 1000)


def test_dataparallel_with_a_gpu_present_keeps_cpu_modules_usable(monkeypatch):
    """With CUDA visible, nn.DataParallel moves its module to cuda:0 and refuses CPU modules;
    ours does neither (simulated: this machine may have no GPU)."""
    import sys

    dp = sys.modules["torch.nn.parallel.data_parallel"]
    monkeypatch.setattr(dp, "_get_available_device_type", lambda: "cuda")
    monkeypatch.setattr(dp, "_get_all_device_indices", lambda: [0])
    monkeypatch.setattr(dp, "_check_balance", lambda ids: None)
    model = get_architecture("resnet50", "imagenet").eval()
    assert model[1].device_ids == [0] and next(model.parameters()).device.type == "cpu"
    assert list(model.state_dict())[0] == "1.module.conv1.weight"
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32)).shape == (1, 1000)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_checkpoint_round_trip(arch, trained):
    path, model, x = trained[arch]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"arch", "state_dict", "epoch", "optimizer", "note"}
    assert raw["arch"] == arch and raw["epoch"] == 3 and raw["optimizer"]["param_groups"]
    prefix = "1.module." if arch == "resnet50" else "1."
    assert all(k.startswith(prefix) for k in raw["state_dict"])
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    assert meta["arch"] == arch and meta["epoch"] == 3 and meta["note"] == "hi"
    assert meta["dataset"] == DATASET[arch] and meta["format"] == "state_dict"
    assert "optimizer" not in meta and "state_dict" not in meta
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_dataparallel_prefix_variants(trained, tmp_path):
    # ResNet-50 state dict without 'module.' (saved from an unwrapped net) ...
    path, model, x = trained["resnet50"]
    sd = torch.load(path, weights_only=True)["state_dict"]
    stripped = {k.replace("1.module.", "1.", 1): v for k, v in sd.items()}
    torch.save({"arch": "resnet50", "state_dict": stripped}, tmp_path / "r50.pth")
    loaded, meta = load_checkpoint(tmp_path / "r50.pth")
    assert any("module." in n for n in meta["notes"])
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    # ... and a CIFAR state dict saved from a DataParallel wrapper, and a bare net state dict
    path, model, x = trained["cifar_resnet20"]
    sd = torch.load(path, weights_only=True)["state_dict"]
    for i, variant in enumerate(
        [
            {k.replace("1.", "1.module.", 1): v for k, v in sd.items()},
            {k[2:]: v for k, v in sd.items()},
        ]
    ):
        torch.save({"arch": "cifar_resnet20", "state_dict": variant}, tmp_path / f"c{i}.pth")
        loaded, meta = load_checkpoint(tmp_path / f"c{i}.pth", dataset="cifar10")
        assert meta["notes"]
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_legacy_serialization(trained, tmp_path):
    """The published checkpoints predate torch.save's zip format."""
    path, model, x = trained["cifar_resnet110"]
    ckpt = torch.load(path, weights_only=True)
    torch.save(ckpt, tmp_path / "old.pth.tar", _use_new_zipfile_serialization=False)
    loaded, meta = load_checkpoint(tmp_path / "old.pth.tar", dataset="cifar10")
    assert meta["arch"] == "cifar_resnet110" and meta["epoch"] == 3
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    data = (tmp_path / "old.pth.tar").read_bytes()
    (tmp_path / "cut.pth.tar").write_bytes(data[: len(data) - 1000])
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "cut.pth.tar")
    _message(e, "cut.pth.tar")


def test_bare_state_dict_infers_arch(trained, tmp_path):
    path, model, x = trained["digits_cnn"]
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    loaded, meta = load_checkpoint(tmp_path / "bare.pt")
    assert meta["arch"] == "digits_cnn" and meta["dataset"] == "digits"
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)


def test_input_center_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = get_architecture("cifar_resnet20", "cifar10", input_center=True).eval()
    assert isinstance(model[0], InputCenterLayer)
    x = torch.rand(2, 3, 32, 32)
    # Salman et al.'s checkpoints have the same keys: the meta (or the caller) must say so
    save_checkpoint(tmp_path / "a.pth", model, "cifar_resnet20")
    plain, _ = load_checkpoint(tmp_path / "a.pth")
    assert isinstance(plain[0], NormalizeLayer)
    centered, meta = load_checkpoint(tmp_path / "a.pth", input_center=True)
    assert isinstance(centered[0], InputCenterLayer) and meta["input_center"]
    save_checkpoint(tmp_path / "b.pth", model, "cifar_resnet20", normalization="input_center")
    centered, _ = load_checkpoint(tmp_path / "b.pth")
    with torch.no_grad():
        assert isinstance(centered[0], InputCenterLayer)
        assert torch.allclose(centered(x), model(x), atol=1e-6)


def test_num_classes_and_channels_from_weights(tmp_path):
    model = get_architecture("cifar_resnet20", "digits", num_classes=4).eval()
    assert model[1].conv1.in_channels == 1
    save_checkpoint(tmp_path / "k4.pth", model, "cifar_resnet20", dataset="digits")
    loaded, meta = load_checkpoint(tmp_path / "k4.pth")
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert loaded(x).shape == (3, 4) and torch.allclose(loaded(x), model(x), atol=1e-6)
    assert meta["dataset"] == "digits"


# ----------------------------------------------------------------------------- failures
def test_checkpoint_missing_keys_and_wrong_arch(trained, tmp_path):
    path, model, _ = trained["cifar_resnet20"]
    sd = dict(torch.load(path, weights_only=True)["state_dict"])
    del sd["1.fc.weight"], sd["1.fc.bias"]
    torch.save({"arch": "cifar_resnet20", "state_dict": sd}, tmp_path / "m.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "m.pth")
    _message(e, "m.pth", "cifar_resnet20", "2 missing keys", "1.fc.bias")
    full = torch.load(path, weights_only=True)["state_dict"]
    torch.save({"arch": "cifar_resnet110", "state_dict": full}, tmp_path / "w.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "w.pth")
    _message(e, "does not fit arch cifar_resnet110", "missing keys", "fit arch cifar_resnet20")
    torch.save({"arch": "vgg16", "state_dict": full}, tmp_path / "u.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "u.pth")
    _message(e, "vgg16", "cifar_resnet110")
    bad = dict(full)
    bad["1.conv1.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save({"arch": "cifar_resnet20", "state_dict": bad}, tmp_path / "s.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "s.pth")
    _message(e, "1.conv1.weight", "(16, 3, 5, 5)", "(16, 3, 3, 3)")
    torch.save({"arch": "cifar_resnet20", "weights": full}, tmp_path / "n.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "n.pth")
    _message(e, "no 'state_dict'", "weights")


def test_unreadable_files(trained, tmp_path):
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "absent.pth")
    _message(e, "absent.pth", "not found")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path)
    _message(e, "not a file")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "text.pth").write_text("arch: resnet\n")
    (tmp_path / "noise.pth").write_bytes(bytes(range(256)) * 4)
    data = trained["digits_cnn"][0].read_bytes()
    (tmp_path / "trunc.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "trunc_end.pth").write_bytes(data[:-30])
    for name in ("empty.pth", "text.pth", "noise.pth", "trunc.pth", "trunc_end.pth"):
        with pytest.raises(SmoothCertError) as e:
            load_checkpoint(tmp_path / name)
        _message(e, tmp_path / name)
    flipped = bytearray(data)
    middle = len(flipped) // 2
    flipped[middle : middle + 64] = bytes(b ^ 0xFF for b in flipped[middle : middle + 64])
    (tmp_path / "flip.pth").write_bytes(bytes(flipped))
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "flip.pth")
    _message(e, "flip.pth", "corrupt")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(trained["digits_cnn"][0], device="gpu7")
    _message(e, "gpu7")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "list.pth")
    _message(e, "list")


def test_save_checkpoint_is_atomic_and_rejects_reserved(tmp_path):
    model = get_architecture("digits_cnn", "digits")
    target = tmp_path / "sub" / "checkpoint.pth.tar"
    save_checkpoint(target, model, "digits_cnn")
    assert sorted(p.name for p in target.parent.iterdir()) == ["checkpoint.pth.tar"]
    with pytest.raises(SmoothCertError):
        save_checkpoint(target, model, "digits_cnn", state_dict={})


# ----------------------------------------------------------------------------- other formats
def test_torchscript_and_pickled_module(trained, tmp_path):
    _, model, x = trained["digits_cnn"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), str(tmp_path / "script.pt"))
        torch.jit.save(
            torch.jit.trace(trained["cifar_resnet20"][1], trained["cifar_resnet20"][2]),
            str(tmp_path / "traced.pt"),
        )
    loaded, meta = load_checkpoint(tmp_path / "script.pt", trust=True)
    assert meta["arch"] is None and meta["format"] == "torchscript"
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    loaded, _ = load_checkpoint(tmp_path / "traced.pt", trust=True)
    _, cmodel, cx = trained["cifar_resnet20"]
    with torch.no_grad():
        assert torch.allclose(loaded(cx), cmodel(cx), atol=1e-5)
    torch.save(model, tmp_path / "whole.pt")
    loaded, meta = load_checkpoint(tmp_path / "whole.pt", trust=True)
    assert meta["format"] == "module" and not loaded.training
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x))
    with pytest.raises(SmoothCertError) as e:
        load_checkpoint(tmp_path / "whole.pt")
    _message(e, "--trust-checkpoint")


def test_digits_cnn_learns_the_digits_quickly():
    from smoothcert.data import load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(0)
    model = get_architecture("digits_cnn", "digits")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), 64):
            idx = perm[i : i + 64]
            loss = torch.nn.functional.cross_entropy(model(train.data[idx]), train.targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(test.data).argmax(1) == test.targets).float().mean().item()
    assert acc > 0.95
