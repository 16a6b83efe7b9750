"""Models of other libraries as base classifiers: Hugging Face folders, hf:/timm:/torchvision:."""

import json
import os

import pytest
import torch

from smoothcert.cli.main import main
from smoothcert.errors import SmoothCertError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a download, even by mistake

FAST = [
    "--N0",
    "10",
    "--N",
    "100",
    "--batch",
    "100",
    "--skip",
    "90",
    "--max",
    "360",
    "--device",
    "cpu",
]
MEAN, STD = [0.25, 0.5, 0.75], [0.2, 0.3, 0.4]


def _transformers():
    try:
        import transformers
    except Exception as exc:  # not installed: pip install -c <(echo torch==X) ".[hf]"
        pytest.skip(f"transformers not importable ({exc}); install the [hf] extra")
    return transformers


def _torchvision():
    try:
        import torchvision
    except Exception as exc:
        pytest.skip(
            "torchvision does not import here (the registry's wheels link the CUDA "
            f"build of torch; this torch is {torch.__version__}): {exc}"
        )
    return torchvision


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A 1-layer ViT for 8x8 3-channel images, random weights, saved with save_pretrained,
    with a preprocessor config giving per-channel mean / std."""
    transformers = _transformers()
    config = transformers.ViTConfig(
        image_size=8,
        patch_size=4,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=10,
    )
    torch.manual_seed(0)
    net = transformers.AutoModelForImageClassification.from_config(config)
    path = tmp_path_factory.mktemp("hf") / "tiny-vit"
    net.save_pretrained(str(path))
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "ViTImageProcessor",
                "do_normalize": True,
                "image_mean": MEAN,
                "image_std": STD,
                "size": {"height": 8, "width": 8},
            }
        )
    )
    return path


def test_hf_wrapper_normalises_inside_and_repeats_channels(hf_dir):
    """The normalisation of a Hugging Face model's preprocessor config is applied inside the
    model (scores = the HF model's logits on the normalised, channel-repeated [0, 1] image)."""
    transformers = _transformers()
    from smoothcert.models import load_checkpoint

    model, meta = load_checkpoint(str(hf_dir))
    assert meta["format"] == "hf" and meta["arch"] == f"hf:{hf_dir}"
    ref = transformers.AutoModelForImageClassification.from_pretrained(
        str(hf_dir), local_files_only=True
    ).eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        want = ref(pixel_values=(x.expand(-1, 3, -1, -1) - mean) / std).logits
        got = model(x)
        unnormalised = ref(pixel_values=x.expand(-1, 3, -1, -1)).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert (got - unnormalised).abs().max() > 1e-3  # the normalisation does change the scores


def test_hf_wrong_image_size_is_one_line(hf_dir):
    """A Hugging Face model with a fixed image_size refuses other sizes with one line that says
    to resize the data before the noise (never resized inside the model)."""
    from smoothcert.models import load_checkpoint

    model, _ = load_checkpoint(str(hf_dir))
    with pytest.raises(SmoothCertError, match="resize the data set to 8x8 before") as info:
        model(torch.rand(1, 1, 16, 16))
    assert "\n" not in str(info.value)


def test_hf_train_certify_analyze_on_digits(hf_dir, cache_dir, tmp_path, capsys):
    """train hf:DIR -> certify the checkpoint (without the folder) -> analyze, through the CLI;
    the checkpoint records the architecture string and rebuilds the model bit for bit."""
    from smoothcert.models import load_checkpoint
    from smoothcert.models.checkpoint import torch_load

    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "digits",
                f"hf:{hf_dir}",
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
    ckpt_path = out / "checkpoint.pth.tar"
    ckpt = torch_load(ckpt_path)  # plain data: weights_only reads it
    assert ckpt["arch"] == f"hf:{hf_dir}" and ckpt["config"]["arch"] == f"hf:{hf_dir}"
    assert ckpt["pretrained"]["means"] == MEAN and ckpt["pretrained"]["sds"] == STD
    trained, _ = load_checkpoint(str(ckpt_path))

    moved = hf_dir.parent / "moved"  # certify needs the checkpoint alone
    hf_dir.rename(moved)
    try:
        rebuilt, meta = load_checkpoint(str(ckpt_path))
        x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert torch.equal(rebuilt(x), trained(x))
        assert meta["arch"] == f"hf:{hf_dir}"
        tsv = tmp_path / "res" / "hf.tsv"
        tsv.parent.mkdir()
        assert main(["certify", "digits", str(ckpt_path), str(tsv), "--sigma", "0.25", *FAST]) == 0
        assert (
            main(
                [
                    "certify",
                    "digits",
                    str(moved),
                    str(tmp_path / "res" / "dir.tsv"),
                    "--sigma",
                    "0.25",
                    *FAST,
                ]
            )
            == 0
        )  # the folder itself as the checkpoint
    finally:
        moved.rename(hf_dir)
    lines = tsv.read_text().splitlines()
    assert len(lines) == 1 + 4  # indices 0, 90, 180, 270
    cfg = json.loads((tmp_path / "res" / "dir.tsv.config.json").read_text())
    assert len(cfg["checkpoint_sha256"]) == 64
    capsys.readouterr()
    assert main(["analyze", str(tsv), "--radii", "0", "0.25"]) == 0
    assert "hf" in capsys.readouterr().out


def test_hf_remote_code_refused_unless_trusted(hf_dir, tmp_path, capsys):
    """A model folder whose config.json asks for its own Python code (auto_map) is refused
    with one line unless trusted: loading it would run code from the folder."""
    from smoothcert.models.pretrained import load_hf_dir

    bad = tmp_path / "remote"
    bad.mkdir()
    for f in hf_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((bad / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "modeling_evil.py").write_text("raise SystemExit('code from the folder ran')\n")
    with pytest.raises(SmoothCertError, match="auto_map"):
        load_hf_dir(bad)
    capsys.readouterr()
    rc = main(["certify", "digits", str(bad), str(tmp_path / "o.tsv"), "--sigma", "0.25", *FAST])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--trust-checkpoint" in err


def test_missing_extra_is_one_line(monkeypatch, tmp_path):
    """Without transformers (or timm), an hf:/timm: model ends in one line naming the extra."""
    import sys

    from smoothcert.models import get_architecture

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    for name in ("transformers", "timm", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)  # "import name" raises ImportError
    for arch, extra in (
        (f"hf:{tmp_path}", "smoothcert[hf]"),
        ("timm:resnet18", "smoothcert[timm]"),
        ("torchvision:resnet18", "smoothcert[timm]"),
    ):
        with pytest.raises(SmoothCertError) as info:
            get_architecture(arch, "digits")
        assert extra in str(info.value) and "\n" not in str(info.value)
        assert "torch==" in str(info.value)


@pytest.mark.parametrize("kind", ["timm", "torchvision"])
def test_timm_torchvision_train_certify(kind, cache_dir, tmp_path):
    """timm:/torchvision: architectures train (random weights, then a local --weights file)
    and certify on digits; their normalisation is inside the model."""
    _torchvision()
    if kind == "timm":
        pytest.importorskip("timm", reason="timm not installed (the [timm] extra)")
    from smoothcert.models import get_architecture, load_checkpoint

    arch = f"{kind}:resnet18"
    model = get_architecture(arch, "digits").eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        want = model.net(
            (x.expand(-1, 3, -1, -1) - model.normalize.means.view(1, 3, 1, 1))
            / model.normalize.sds.view(1, 3, 1, 1)
        )
        torch.testing.assert_close(model(x), want)
    weights = tmp_path / "w.pth"
    torch.save(model.net.state_dict(), weights)
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "digits",
                arch,
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
                "--weights",
                str(weights),
            ]
        )
        == 0
    )
    loaded, meta = load_checkpoint(str(out / "checkpoint.pth.tar"))
    assert meta["arch"] == arch
    assert (
        main(
            [
                "certify",
                "digits",
                str(out / "checkpoint.pth.tar"),
                str(tmp_path / "c.tsv"),
                "--sigma",
                "0.25",
                *FAST,
            ]
        )
        == 0
    )


class _TinyNet(torch.nn.Module):
    """A stand-in for a timm / torchvision classifier: 3-channel conv, pool, linear head."""

    def __init__(self, num_classes=1000, in_chans=3):
        super().__init__()
        self.conv = torch.nn.Conv2d(in_chans, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))

    def reset_classifier(self, k):
        self.fc = torch.nn.Linear(4, k)


def _fake_libraries(monkeypatch, calls):
    """Fake ``timm`` and ``torchvision`` modules with their documented entry points."""
    import sys
    import types

    tv = types.ModuleType("torchvision")
    preset = types.SimpleNamespace(mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], crop_size=[8])
    weights_enum = types.SimpleNamespace(DEFAULT=types.SimpleNamespace(transforms=lambda: preset))

    def get_model(name, weights=None, num_classes=1000):
        calls.append(("torchvision", name, weights))
        return _TinyNet(num_classes)

    tv.models = types.SimpleNamespace(
        get_model=get_model, get_model_weights=lambda name: weights_enum
    )
    timm = types.ModuleType("timm")

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3):
        calls.append(("timm", name, pretrained))
        return _TinyNet(num_classes, in_chans)

    timm.create_model = create_model
    timm.data = types.SimpleNamespace(
        resolve_data_config=lambda args, model: {
            "input_size": (3, 8, 8),
            "mean": (0.4, 0.5, 0.6),
            "std": (0.2, 0.25, 0.3),
        }
    )
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "timm", timm)


@pytest.mark.parametrize("kind,suffix", [("timm", ".safetensors"), ("torchvision", ".pth")])
def test_timm_torchvision_paths_with_stand_ins(kind, suffix, monkeypatch, cache_dir, tmp_path):
    """timm:/torchvision: (stand-in libraries): never asked for pretrained weights, the library's
    mean / std inside the model, a local --weights file loaded (1000-class head replaced for
    the digits' 10), the checkpoint rebuilt bit for bit, certify runs."""
    from smoothcert.models import get_architecture, load_checkpoint

    calls = []
    _fake_libraries(monkeypatch, calls)
    arch = f"{kind}:tiny"
    src = _TinyNet(1000)
    weights = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        safetensors = pytest.importorskip("safetensors.torch")
        safetensors.save_file(src.state_dict(), str(weights))
    else:
        torch.save({"state_dict": src.state_dict()}, weights)
    model = get_architecture(arch, "digits", weights=str(weights)).eval()
    torch.testing.assert_close(model.net.conv.weight, src.conv.weight)  # the file's weights
    assert model.net.fc.out_features == 10  # a new head for the digits
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    mean = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net((x.expand(-1, 3, -1, -1) - mean) / std))
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "digits",
                arch,
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
                "--weights",
                str(weights),
            ]
        )
        == 0
    )
    assert all(c[2] in (None, False) for c in calls)  # never pretrained=True / a weights enum
    ckpt = out / "checkpoint.pth.tar"
    a, meta = load_checkpoint(str(ckpt))
    b, _ = load_checkpoint(str(ckpt))
    assert meta["arch"] == arch and meta["pretrained"]["weights"] == str(weights)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert (
        main(["certify", "digits", str(ckpt), str(tmp_path / "c.tsv"), "--sigma", "0.25", *FAST])
        == 0
    )


def test_weights_file_that_does_not_fit_is_one_line(monkeypatch, tmp_path):
    """A --weights file whose keys are not the model's is refused with one line."""
    from smoothcert.models import get_architecture

    _fake_libraries(monkeypatch, [])
    weights = tmp_path / "w.pth"
    torch.save({"other.weight": torch.zeros(2)}, weights)
    with pytest.raises(SmoothCertError, match="does not fit") as info:
        get_architecture("timm:tiny", "digits", weights=str(weights))
    assert "\n" not in str(info.value)
    with pytest.raises(SmoothCertError, match="timm: / torchvision:"):
        get_architecture("digits_cnn", "digits", weights=str(weights))


def test_hf_new_head_and_half_precision_folder(hf_dir, tmp_path):
    """An hf folder fine-tuned on another label set gets a new head of that size, and a folder
    saved in half precision runs on float32 images (the data and the noise are float32)."""
    transformers = _transformers()
    from smoothcert.models.pretrained import load_hf_dir

    model = load_hf_dir(hf_dir, 3).eval()
    assert tuple(model(torch.rand(2, 1, 8, 8)).shape) == (2, 3)
    half = tmp_path / "half"
    transformers.AutoModelForImageClassification.from_pretrained(
        str(hf_dir), local_files_only=True
    ).half().save_pretrained(str(half))
    model = load_hf_dir(half).eval()
    assert model(torch.rand(2, 1, 8, 8)).dtype == torch.float32


def test_weights_file_that_needs_code_is_refused(monkeypatch, tmp_path):
    """A --weights file that needs unpickling code (a pickled module) is refused with one line
    (read with weights_only: it never runs code from the file)."""
    from smoothcert.models import get_architecture

    _fake_libraries(monkeypatch, [])
    weights = tmp_path / "w.pth"
    torch.save(_TinyNet(), weights)
    with pytest.raises(SmoothCertError, match="unpickling code") as info:
        get_architecture("torchvision:tiny", "digits", weights=str(weights))
    assert "\n" not in str(info.value)
