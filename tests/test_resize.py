"""Pretrained models with a fixed input size: the data are resized to it before the noise.

certify / predict / train resize the data to the model's input size (bilinear, on the clean
image), so that the noise is drawn in the resized image's dimension and the radius is a radius
in the resized [0, 1] pixel space; the configuration records ``resize: [H, W]``.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from smoothcert.cli.main import main

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAST = ["--batch", "100", "--skip", "90", "--max", "180", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def vit16(tmp_path_factory):
    """A 1-layer Hugging Face ViT for 16x16 1-channel images (random weights), saved offline."""
    try:
        import transformers
    except Exception as exc:
        pytest.skip(f"transformers not importable ({exc}); install the [hf] extra")
    config = transformers.ViTConfig(
        image_size=16,
        patch_size=8,
        num_channels=1,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
    )
    torch.manual_seed(0)
    net = transformers.AutoModelForImageClassification.from_config(config)
    path = tmp_path_factory.mktemp("hf") / "vit16"
    net.save_pretrained(str(path))
    return path


def test_resized_dataset_shape_range_and_attributes():
    """ResizedDataset resizes each clean image to (H', W') with values kept in [0, 1], keeps
    the labels and the data set's attributes, and declares the new input_shape."""
    from smoothcert.data import load_dataset
    from smoothcert.data.transforms import ResizedDataset

    base = load_dataset("digits", "test")
    data = ResizedDataset(base, (16, 12))
    assert data.input_shape == (1, 16, 12) and data.resize == [16, 12] and len(data) == len(base)
    assert data.num_classes == base.num_classes and data.name == base.name
    x, y = data[5]
    assert x.shape == (1, 16, 12) and y == base[5][1]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # a constant image stays that constant (the interpolation weights sum to one)
    assert torch.allclose(data.transform(torch.full((1, 8, 8), 0.3)), torch.full((1, 16, 12), 0.3))


def test_models_without_a_fixed_size_are_not_resized():
    """resize_data leaves the data alone for a reference architecture (any size) and for a
    model whose fixed size is the data's."""
    from smoothcert.data import load_dataset
    from smoothcert.models import get_architecture
    from smoothcert.models.pretrained import resize_data

    data = load_dataset("digits", "test")
    model = get_architecture("digits_cnn", "digits")
    assert resize_data(data, model) == (data, None)


def test_timm_and_torchvision_fixed_sizes():
    """The fixed input size of timm models (pretrained_cfg fixed_input_size with the data
    config's input_size) and torchvision models (an integer image_size, as its ViTs have)."""
    from smoothcert.models.pretrained import _fixed_size

    net = torch.nn.Linear(2, 2)
    assert _fixed_size("timm", net, [224, 224]) is None  # a CNN: any size
    net.pretrained_cfg = {"fixed_input_size": True}
    assert _fixed_size("timm", net, [32, 48]) == [32, 48]
    net = torch.nn.Linear(2, 2)
    assert _fixed_size("torchvision", net, [224]) is None
    net.image_size = 224
    assert _fixed_size("torchvision", net, None) == [224, 224]


def test_hf_vit16_train_certify_predict_analyze_on_8x8_digits(
    vit16, cache_dir, tmp_path, capsys, monkeypatch
):
    """A ViT with image_size 16 goes through train -> certify -> predict -> analyze on the 8x8
    digits (it was refused with 'resize the data set'): the data are resized to 16x16, the
    noise has dimension 256, every configuration records resize [16, 16], one note on stderr."""
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "digits",
                f"hf:{vit16}",
                str(out),
                "--sigma",
                "0.25",
                "--epochs",
                "1",
                "--batch",
                "256",
                "--lr",
                "0.01",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("resized to 16x16 before the noise") == 1, err
    ckpt = torch.load(out / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["config"]["resize"] == [16, 16]
    tsv = tmp_path / "res" / "vit.tsv"
    assert (
        main(
            [
                "certify",
                "digits",
                str(out / "checkpoint.pth.tar"),
                str(tsv),
                "--sigma",
                "0.25",
                "--N0",
                "10",
                "--N",
                "100",
                *FAST,
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "radii are in the resized 16x16 pixel space" in err, err
    cfg = json.loads(tsv.with_name("vit.tsv.config.json").read_text())
    assert cfg["resize"] == [16, 16] and cfg["dim"] == 256
    assert len(tsv.read_text().splitlines()) == 1 + 2
    pred = tmp_path / "res" / "pred.tsv"
    assert (
        main(["predict", "digits", str(vit16), str(pred), "--sigma", "0.25", "--N", "50", *FAST])
        == 0
    )
    pcfg = json.loads(pred.with_name("pred.tsv.config.json").read_text())
    assert pcfg["resize"] == [16, 16] and pcfg["dim"] == 256
    assert main(["analyze", str(tsv), "--radii", "0", "0.25"]) == 0
    assert "r = 0.25" in capsys.readouterr().out


def test_noise_is_added_after_the_resize(vit16, cache_dir, tmp_path, monkeypatch):
    """The model sees resize(x) + noise, never resize(x + noise): its inputs are 16x16, and
    their deviations from the resized clean image have variance sigma^2 in every pixel and no
    correlation between neighbouring pixels (an upsampled 8x8 noise would have ~0.5)."""
    from smoothcert.data import load_dataset
    from smoothcert.data.transforms import ResizeTensor
    from smoothcert.models.pretrained import PretrainedClassifier

    seen = []
    forward = PretrainedClassifier.forward

    def recording(self, x):
        seen.append(x.detach().clone())
        return forward(self, x)

    monkeypatch.setattr(PretrainedClassifier, "forward", recording)
    sigma = 0.5
    assert (
        main(
            [
                "predict",
                "digits",
                str(vit16),
                str(tmp_path / "p.tsv"),
                "--sigma",
                str(sigma),
                "--N",
                "400",
                "--batch",
                "400",
                "--max",
                "1",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    inputs = torch.cat([x for x in seen if x.shape[0] > 1])  # the noisy batch, not the probe
    assert inputs.shape == (400, 1, 16, 16)
    clean = ResizeTensor((16, 16))(load_dataset("digits", "test")[0][0])
    dev = (inputs - clean).double().squeeze(1)
    var = dev.var(0)  # per pixel, over the 400 draws
    assert abs(float(var.mean()) / sigma**2 - 1) < 0.05  # pooled: sd ~1%
    left, right = dev[:, :, :-1].reshape(-1), dev[:, :, 1:].reshape(-1)
    corr = float(torch.corrcoef(torch.stack([left, right]))[0, 1])
    assert abs(corr) < 0.05, corr  # 96,000 pairs: sd ~0.003
