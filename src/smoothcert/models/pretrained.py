"""Base classifiers from other libraries: Hugging Face, timm and torchvision.

Architecture names (``get_architecture``, ``smoothcert train DATASET ARCH``):

- ``hf:DIR``: a Hugging Face image classifier saved by ``save_pretrained`` in the folder DIR
  (``config.json`` and the weights; optionally ``preprocessor_config.json``), loaded with
  ``AutoModelForImageClassification.from_pretrained(DIR, local_files_only=True)``; its output's
  ``.logits`` are the scores. A folder DIR is also accepted wherever a checkpoint is
  (``certify``, ``predict``, :func:`~smoothcert.models.load_checkpoint`).
- ``timm:NAME`` (``timm.create_model``) and ``torchvision:NAME``
  (``torchvision.models.get_model``): random weights, or the local file ``weights``
  (``--weights FILE`` of ``train``: safetensors, or a ``torch.save`` state dict read with
  ``weights_only=True``). Nothing is ever downloaded.

Normalisation inside the model. :class:`PretrainedClassifier` is
``net(normalize(x))``: it takes images in [0, 1] pixel units, so the smoothing noise is added,
and the radius certified, in that space, as with the reference architectures. The constants
come from the model's own configuration, never from the data set's: the ``image_mean`` /
``image_std`` of ``preprocessor_config.json`` (no file, or ``do_normalize: false``: mean 0,
sd 1); timm's ``resolve_data_config`` (the model's ``pretrained_cfg`` mean / std); the
``transforms()`` of torchvision's default weights for NAME (ImageNet's mean / std when NAME
has none). A model that expects 3 channels given 1-channel images repeats the channel inside
the wrapper, so the input dimension d of the certificate stays the data's.

Resizing happens before the noise, in the data, never inside the model. A model whose input
size is fixed (a Hugging Face ``image_size``; timm's ``input_size`` when its ``pretrained_cfg``
says ``fixed_input_size``; a torchvision model's ``image_size``, as its ViTs have) gets data
resized to that size by :func:`resize_data` (bilinear, before the noise): ``certify``,
``predict`` and ``train`` do it automatically when the sizes differ, say so in one line on
stderr and record ``resize: [H, W]`` in their configuration. The noise is then drawn in the
resized image's dimension d = C*H*W and **the certified radius is a radius in the resized
[0, 1] pixel space**, not in the original image's. Resizing inside the model, after the noise,
would void the certificate: interpolation averages and correlates the noise's coordinates, so
the model would see another distribution than the one certified, and a distance before resizing
is not the same distance after. The model itself still refuses other sizes with a one-line
error (API calls that pass unresized images).

Trust: files never run code unless trusted (see :mod:`.checkpoint`). Weights are read from
safetensors files or with ``torch.load(weights_only=True)``; ``trust_remote_code`` is false
unless ``trust=True`` (``--trust-checkpoint``): a ``config.json`` whose ``auto_map`` asks for
the folder's own Python code is refused otherwise. ``local_files_only=True`` always.

The checkpoint ``train`` writes records the architecture string (``arch``) and, under
``pretrained``, plain data that rebuilds the model without the original folder or library
weights: the kind, the name, the normalisation, the channels, the number of classes and, for
Hugging Face, the configuration dict. ``certify`` needs only that file (and, for timm /
torchvision, the library). transformers and timm (with torchvision) are optional extras:
``pip install -c <(echo torch==X.Y.Z) "smoothcert[hf]"`` / ``"smoothcert[timm]"``, where
X.Y.Z is the installed torch (an unconstrained install may replace it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import math
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import SmoothCertError
from .architectures import NormalizeLayer

__all__ = [
    "PREFIXES",
    "PretrainedClassifier",
    "is_pretrained_arch",
    "is_hf_dir",
    "build_pretrained",
    "load_hf_dir",
    "load_pretrained_checkpoint",
    "checkpoint_extra",
    "dir_sha256",
    "hf_normalization",
    "get_architecture",
    "fixed_image_size",
    "resize_data",
]

PREFIXES = ("hf:", "timm:", "torchvision:")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_EXTRA = {"transformers": "hf", "safetensors": "hf", "timm": "timm", "torchvision": "timm"}


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _require(module: str, what: str):
    """``import module``, or a one-line error naming the extra that installs it."""
    if module == "transformers":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a download at run time
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or OSError / RuntimeError of a mismatched build
        torch_version = torch.__version__.split("+")[0]
        raise SmoothCertError(
            f"{what} needs the optional package {module}, which cannot be imported "
            f"({_one_line(exc)}): pip install -c <(echo torch=={torch_version}) "
            f'"smoothcert[{_EXTRA[module]}]"'
        ) from None


def is_pretrained_arch(arch) -> bool:
    """Whether ``arch`` names a model of another library (``hf:``, ``timm:``, ``torchvision:``)."""
    return isinstance(arch, str) and arch.lower().startswith(PREFIXES)


def is_hf_dir(path) -> bool:
    """Whether ``path`` is a folder holding a ``config.json`` (a Hugging Face model)."""
    try:
        p = Path(path)
        return p.is_dir() and (p / "config.json").is_file()
    except (OSError, TypeError, ValueError):
        return False


def dir_sha256(path) -> str:
    """SHA-256 over a folder's files (sorted relative names and contents): a model folder's
    fingerprint, as ``file_sha256`` is a checkpoint file's."""
    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(file.relative_to(root).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


# ----------------------------------------------------------------------------- the wrapper
def _pair(size) -> tuple[int, int] | None:
    if isinstance(size, int) and size > 0:
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) for s in size):
        return (int(size[0]), int(size[1]))
    return None


class PretrainedClassifier(nn.Module):
    """``net(normalize(x))`` for images ``x`` in [0, 1]: the model's own normalisation inside,
    a 1-channel image repeated to the ``channels`` the model expects, the ``.logits`` of a
    Hugging Face output returned as the scores. ``info`` is the plain data stored in a
    checkpoint to rebuild it; the state dict holds ``net.*`` only (the constants are not in it,
    as with :class:`NormalizeLayer`)."""

    def __init__(
        self,
        net: nn.Module,
        kind: str,
        means,
        sds,
        channels: int,
        image_size=None,
        info: dict | None = None,
    ):
        super().__init__()
        self.kind = kind
        self.channels = int(channels)
        means, sds = list(means), list(sds)
        if len(means) == 1 and self.channels > 1:
            means, sds = means * self.channels, sds * self.channels
        if len(means) != self.channels or len(sds) != self.channels:
            raise SmoothCertError(
                f"{kind} model: {len(means)} normalisation means for {self.channels} input channels"
            )
        self.normalize = NormalizeLayer(means, sds)
        self.net = net
        self.image_size = _pair(image_size)
        self.info = dict(info or {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise SmoothCertError(
                f"{self.kind} model: expected a batch (N, C, H, W) of images, "
                f"got shape {tuple(x.shape)}"
            )
        if self.image_size is not None and tuple(x.shape[-2:]) != self.image_size:
            h, w = self.image_size
            raise SmoothCertError(
                f"the model expects {h}x{w} images, the data are {x.shape[-2]}x{x.shape[-1]}: "
                f"resize the data set to {h}x{w} before the noise (smoothcert.models.pretrained"
                ".resize_data, as certify / predict / train do; resizing after the noise would "
                "change its law and the radius's meaning)"
            )
        c = x.shape[1]
        if c != self.channels:
            if c != 1:
                raise SmoothCertError(
                    f"the model expects {self.channels}-channel images, the data have {c} channels"
                )
            x = x.expand(-1, self.channels, -1, -1)
        x = self.normalize(x)
        if self.kind == "hf":
            return self.net(pixel_values=x).logits
        return self.net(x)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, channels={self.channels}, image_size={self.image_size}"


def fixed_image_size(model) -> tuple[int, int] | None:
    """The (H, W) a :class:`PretrainedClassifier` requires, None for any other model or a model
    that takes any size."""
    model = getattr(model, "module", model)  # DataParallel / DistributedDataParallel
    return model.image_size if isinstance(model, PretrainedClassifier) else None


def resize_data(dataset, model, *, note: bool = True):
    """``(dataset, resize)``: the data resized to the fixed input size of ``model`` (bilinear,
    before any noise: see the module's notes) and ``[H, W]``, or ``(dataset, None)`` when the
    model takes the data's size. ``note`` prints one line on stderr when resizing."""
    size = fixed_image_size(model)
    if size is None or tuple(dataset.input_shape[-2:]) == size:
        return dataset, None
    from ..data.transforms import ResizedDataset

    resized = ResizedDataset(dataset, size)
    if note:
        import sys

        h, w = size
        print(
            f"# the model takes {h}x{w} images: the {dataset.input_shape[-2]}x"
            f"{dataset.input_shape[-1]} data are resized to {h}x{w} before the noise; the "
            f"noise has dimension {math.prod(resized.input_shape)} and radii are in the "
            f"resized {h}x{w} pixel space",
            file=sys.stderr,
        )
    return resized, [int(size[0]), int(size[1])]


def checkpoint_extra(model: nn.Module) -> dict:
    """``{'pretrained': info}`` for a :class:`PretrainedClassifier`, else ``{}``: the extra
    entry of a checkpoint that rebuilds the model (plain data, read with weights_only)."""
    return {"pretrained": dict(model.info)} if isinstance(model, PretrainedClassifier) else {}


def _split(arch: str) -> tuple[str, str]:
    kind, _, name = arch.partition(":")
    kind = kind.lower()
    if kind not in ("hf", "timm", "torchvision") or not name:
        raise SmoothCertError(f"architecture {arch!r}: use hf:DIR, timm:NAME or torchvision:NAME")
    return kind, name


# ----------------------------------------------------------------------------- Hugging Face
def _read_json(path: Path, what: str) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SmoothCertError(f"cannot read {what} {path}: {_one_line(exc)}") from None
    if not isinstance(obj, dict):
        raise SmoothCertError(f"{what} {path} is not a JSON object")
    return obj


_TRUST_CODE = (
    "asks for the model's own Python code (auto_map), which runs when loaded: pass "
    "--trust-checkpoint (API: trust=True) only if you trust its source"
)


def _check_config(cfg: dict, where, trust: bool) -> None:
    if not isinstance(cfg.get("model_type"), str):
        raise SmoothCertError(f"{where}: config.json has no model_type")
    if cfg.get("auto_map") and not trust:
        raise SmoothCertError(f"{where}: config.json {_TRUST_CODE}")


def hf_normalization(directory) -> tuple[list[float], list[float], dict]:
    """``(means, sds, preprocessor)`` from ``preprocessor_config.json`` in ``directory``:
    ``image_mean`` / ``image_std`` (one value or one per channel), mean 0 / sd 1 when the file
    is missing or says ``do_normalize: false``."""
    path = Path(directory) / "preprocessor_config.json"
    if not path.is_file():
        return [0.0], [1.0], {}
    pre = _read_json(path, "preprocessor config")
    if pre.get("do_normalize", True) is False:
        return [0.0], [1.0], pre
    mean, std = pre.get("image_mean", [0.0]), pre.get("image_std", [1.0])
    mean = mean if isinstance(mean, list) else [mean]
    std = std if isinstance(std, list) else [std]
    try:
        means, sds = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        raise SmoothCertError(f"{path}: image_mean / image_std must be numbers") from None
    return means, sds, pre


@contextlib.contextmanager
def _quiet_transformers(transformers):
    """transformers' load reports and progress bars off, restored afterwards."""
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _labels(k: int) -> dict:
    return {
        "num_labels": k,
        "id2label": {i: f"LABEL_{i}" for i in range(k)},
        "label2id": {f"LABEL_{i}": i for i in range(k)},
    }


def _plain(obj):
    """A JSON round trip: plain data that ``torch.load(weights_only=True)`` reads back."""
    return json.loads(json.dumps(obj, default=str))


def _hf_wrap(net, directory, cfg: dict, means, sds, name: str) -> PretrainedClassifier:
    channels = int(cfg.get("num_channels", 3))
    info = {
        "kind": "hf",
        "name": name,
        "means": list(means),
        "sds": list(sds),
        "channels": channels,
        "num_classes": int(net.config.num_labels),
        "image_size": cfg.get("image_size"),
        "hf_config": _plain(net.config.to_dict()),
    }
    return PretrainedClassifier(net, "hf", means, sds, channels, cfg.get("image_size"), info)


def load_hf_dir(
    directory, num_classes: int | None = None, *, trust: bool = False, name: str | None = None
) -> PretrainedClassifier:
    """A Hugging Face image classifier from its ``save_pretrained`` folder, wrapped in
    :class:`PretrainedClassifier` (train mode, CPU). ``num_classes`` other than the config's
    ``num_labels`` puts a new, randomly initialised head (fine-tuning on another label set)."""
    directory = Path(directory)
    where = f"model folder {directory}"
    if not is_hf_dir(directory):
        raise SmoothCertError(
            f"{where} has no config.json (a Hugging Face model folder, as "
            "save_pretrained writes it)"
        )
    cfg = _read_json(directory / "config.json", "model config")
    _check_config(cfg, where, trust)
    means, sds, _ = hf_normalization(directory)
    transformers = _require("transformers", "a Hugging Face model")
    kwargs = {"local_files_only": True, "trust_remote_code": bool(trust)}
    if "weights_only" in inspect.signature(transformers.PreTrainedModel.from_pretrained).parameters:
        kwargs["weights_only"] = True  # a pytorch_model.bin holds tensors, never code
    if num_classes is not None and int(num_classes) != int(
        cfg.get("num_labels", len(cfg.get("id2label") or {}) or 2)
    ):
        kwargs.update(_labels(int(num_classes)), ignore_mismatched_sizes=True)
    try:
        with _quiet_transformers(transformers):
            net = transformers.AutoModelForImageClassification.from_pretrained(
                str(directory), **kwargs
            )
    except Exception as exc:
        raise SmoothCertError(
            f"cannot load the Hugging Face model in {directory}: {_one_line(exc)}"
        ) from None
    net = net.float()  # weights saved in half precision: the data and the noise are float32
    return _hf_wrap(net, directory, cfg, means, sds, name or str(directory))


def _hf_from_info(info: dict, trust: bool, where) -> nn.Module:
    cfg = info.get("hf_config")
    if not isinstance(cfg, dict):
        raise SmoothCertError(f"{where}: no Hugging Face configuration (pretrained.hf_config)")
    _check_config(cfg, where, trust)
    if cfg.get("auto_map"):
        raise SmoothCertError(
            f"{where}: the model needs its own Python code (auto_map), which "
            "a checkpoint does not hold: certify the model folder instead"
        )
    transformers = _require("transformers", "a Hugging Face model")
    try:
        config_class = transformers.CONFIG_MAPPING[cfg["model_type"]]
        config = config_class.from_dict(cfg)
        with _quiet_transformers(transformers):
            return transformers.AutoModelForImageClassification.from_config(config)
    except Exception as exc:
        raise SmoothCertError(
            f"{where}: cannot rebuild the Hugging Face model "
            f"({cfg.get('model_type')}): {_one_line(exc)}"
        ) from None


# ----------------------------------------------------------------------------- timm, torchvision
def _read_weights(path) -> dict:
    """A state dict from a safetensors file or a ``torch.save`` file (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise SmoothCertError(f"weights file {path} not found")
    if path.suffix == ".safetensors":
        _require("safetensors", "a .safetensors weights file")
        try:
            return dict(importlib.import_module("safetensors.torch").load_file(str(path)))
        except Exception as exc:
            raise SmoothCertError(f"cannot read weights file {path}: {_one_line(exc)}") from None
    from .checkpoint import torch_load

    obj = torch_load(path, what="weights file")
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not (
        isinstance(obj, dict)
        and obj
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise SmoothCertError(f"weights file {path} holds no state dict (names -> tensors)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


def _head_names(net: nn.Module) -> set[str]:
    """Parameter names of the last ``nn.Linear`` (the classifier a new label set replaces)."""
    last = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return set()
    return {f"{last}.{p}" for p, _ in net.get_submodule(last).named_parameters()}


def _load_weights(net: nn.Module, path, where: str) -> list[str]:
    """Load ``path`` into ``net``; the classifier head may differ in shape (new label set):
    it then keeps its random initialisation. Returns notes."""
    state = _read_weights(path)
    own = net.state_dict()
    head = _head_names(net)
    skipped = sorted(k for k in head if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    state = {k: v for k, v in state.items() if k not in skipped}
    missing = set(own) - set(state) - set(skipped)
    unexpected = set(state) - set(own)
    bad = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        what = (
            f"missing {sorted(missing)[:3]}"
            if missing
            else f"unexpected {sorted(unexpected)[:3]}"
            if unexpected
            else f"shape of {bad[:3]}"
        )
        raise SmoothCertError(f"weights file {path} does not fit {where}: {what}")
    net.load_state_dict(state, strict=False)
    return [f"new classifier head ({', '.join(skipped)})"] if skipped else []


def _timm_net(name: str, num_classes: int | None, channels: int | None):
    timm = _require("timm", f"timm:{name}")
    kwargs = {"pretrained": False}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    if channels is not None:
        kwargs["in_chans"] = int(channels)
    try:
        net = timm.create_model(name, **kwargs)
    except Exception as exc:
        raise SmoothCertError(f"timm:{name}: {_one_line(exc)}") from None
    data = timm.data.resolve_data_config({}, model=net)
    mean, std = data.get("mean", IMAGENET_MEAN), data.get("std", IMAGENET_STD)
    size = data.get("input_size", (3, 224, 224))
    return net, list(mean), list(std), int(channels or size[0]), list(size[1:])


def _fixed_size(kind: str, net: nn.Module, size) -> list[int] | None:
    """[H, W] when a timm / torchvision model accepts that input size only: timm's
    ``pretrained_cfg['fixed_input_size']`` (its ViTs) with the data config's ``input_size``; a
    torchvision model's integer ``image_size`` attribute (its VisionTransformer)."""
    if kind == "timm":
        cfg = getattr(net, "pretrained_cfg", None) or {}
        fixed = cfg.get("fixed_input_size", False) if isinstance(cfg, dict) else False
        return [int(v) for v in size] if fixed and size and len(size) == 2 else None
    image_size = getattr(net, "image_size", None)
    if isinstance(image_size, int) and not isinstance(image_size, bool) and image_size > 0:
        return [image_size, image_size]
    return None


def _torchvision_net(name: str, num_classes: int | None):
    tv = _require("torchvision", f"torchvision:{name}")
    kwargs = {"weights": None}
    if num_classes is not None:
        kwargs["num_classes"] = int(num_classes)
    try:
        net = tv.models.get_model(name, **kwargs)
    except Exception as exc:
        raise SmoothCertError(f"torchvision:{name}: {_one_line(exc)}") from None
    mean, std, size = IMAGENET_MEAN, IMAGENET_STD, None
    try:  # metadata of the default weights (no download: transforms() is a recipe)
        preset = tv.models.get_model_weights(name).DEFAULT.transforms()
        mean, std = preset.mean, preset.std
        size = list(preset.crop_size) if getattr(preset, "crop_size", None) else None
    except Exception:
        pass
    return net, list(mean), list(std), 3, size


def _other_net(kind: str, name: str, num_classes, channels=None):
    if kind == "timm":
        return _timm_net(name, num_classes, channels)
    return _torchvision_net(name, num_classes)


def build_pretrained(
    arch: str, num_classes: int | None = None, *, weights=None, trust: bool = False
) -> PretrainedClassifier:
    """The :class:`PretrainedClassifier` of ``hf:DIR``, ``timm:NAME`` or ``torchvision:NAME``
    (train mode, CPU). ``num_classes``: the data's (a new head when it differs from the
    model's); ``weights``: a local weights file for timm / torchvision (random otherwise)."""
    kind, name = _split(arch)
    if kind == "hf":
        if weights is not None:
            raise SmoothCertError(
                "--weights is for timm: / torchvision: models; an hf:DIR model's weights are in DIR"
            )
        return load_hf_dir(name, num_classes, trust=trust, name=name)
    weights_name = None
    if weights is not None:  # the file's head size first, then a new head if it differs
        net, means, sds, channels, size = _other_net(kind, name, None)
        notes = _load_weights(net, weights, arch)
        if num_classes is not None and _out_features(net) != int(num_classes):
            net = _new_head(net, int(num_classes), arch)
            notes.append(f"new classifier head for {num_classes} classes")
        weights_name = str(weights)
    else:
        net, means, sds, channels, size = _other_net(kind, name, num_classes)
    fixed = _fixed_size(kind, net, size)
    info = {
        "kind": kind,
        "name": name,
        "means": means,
        "sds": sds,
        "channels": channels,
        "num_classes": _out_features(net),
        "input_size": size,
        "weights": weights_name,
        "image_size": fixed,
    }
    return PretrainedClassifier(net, kind, means, sds, channels, fixed, info)


def _out_features(net: nn.Module) -> int | None:
    head = [m for m in net.modules() if isinstance(m, nn.Linear)]
    return int(head[-1].out_features) if head else None


def _new_head(net: nn.Module, k: int, arch: str) -> nn.Module:
    if hasattr(net, "reset_classifier"):  # timm
        net.reset_classifier(k)
        return net
    last = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise SmoothCertError(f"{arch}: no linear classifier to replace for {k} classes")
    old = net.get_submodule(last)
    parent, _, child = last.rpartition(".")
    setattr(
        net.get_submodule(parent) if parent else net,
        child,
        nn.Linear(old.in_features, k, bias=old.bias is not None),
    )
    return net


# ----------------------------------------------------------------------------- checkpoints
def load_pretrained_checkpoint(path, meta: dict, state_dict, *, trust: bool = False):
    """The :class:`PretrainedClassifier` of a checkpoint whose ``arch`` is ``hf:``,
    ``timm:`` or ``torchvision:``, rebuilt from its ``pretrained`` entry (plain data) and
    loaded strictly from its state dict."""
    arch = meta.get("arch")
    where = f"checkpoint {path} (arch {arch})"
    kind, name = _split(arch)
    info = meta.get("pretrained")
    if not isinstance(info, dict) or info.get("kind") != kind:
        raise SmoothCertError(
            f"{where} has no 'pretrained' entry to rebuild the model "
            "(write it with smoothcert train)"
        )
    try:
        means, sds = [float(v) for v in info["means"]], [float(v) for v in info["sds"]]
        channels = int(info["channels"])
        k = info.get("num_classes")
        k = None if k is None else int(k)
    except (KeyError, TypeError, ValueError):
        raise SmoothCertError(f"{where}: malformed 'pretrained' entry") from None
    if kind == "hf":
        net = _hf_from_info(info, trust, where)
        image_size = info.get("image_size")
    else:
        net, _, _, _, size = _other_net(kind, name, k, channels if kind == "timm" else None)
        image_size = _fixed_size(kind, net, size)  # the library's model says, not the file
    model = PretrainedClassifier(net, kind, means, sds, channels, image_size, info)
    sd = {(k if k.startswith("net.") else "net." + k): v for k, v in state_dict.items()}
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise SmoothCertError(f"{where}: the weights do not fit: {_one_line(exc)}") from None
    return model


def get_architecture(
    arch: str,
    dataset: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_center: bool = False,
    weights=None,
    trust: bool = False,
) -> nn.Module:
    """:func:`.architectures.get_architecture`, and the models of other libraries
    (``hf:DIR``, ``timm:NAME``, ``torchvision:NAME``: :func:`build_pretrained`, whose
    normalisation comes from the model, not from ``dataset``; ``dataset`` gives the number of
    classes unless ``num_classes`` is given). ``weights``: timm / torchvision only."""
    from . import architectures

    if not is_pretrained_arch(arch):
        if weights is not None:
            raise SmoothCertError(f"--weights is for timm: / torchvision: models, not {arch}")
        return architectures.get_architecture(
            arch,
            dataset,
            num_classes=num_classes,
            in_channels=in_channels,
            input_center=input_center,
        )
    if input_center:
        raise SmoothCertError(
            f"{arch}: the input-center layer is for the reference "
            "architectures; the model's own normalisation is used"
        )
    if num_classes is None:
        num_classes = architectures._dataset_shape(dataset)[0]
    return build_pretrained(arch, num_classes, weights=weights, trust=trust)
