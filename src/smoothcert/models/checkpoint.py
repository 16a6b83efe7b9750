"""Checkpoints in the reference format: ``{'arch', 'state_dict', 'epoch', 'optimizer', ...}``.

This is the file written by Cohen et al.'s ``train.py`` (``checkpoint.pth.tar``), whose
``state_dict`` is that of ``Sequential(NormalizeLayer, net)``: keys ``1.*`` (``1.module.*`` for
the DataParallel ResNet-50). :func:`load_checkpoint` also reads bare state dicts and, when
trusted, TorchScript files, ``torch.export`` archives (.pt2) and pickled whole modules.

A Hugging Face model folder (``config.json`` + weights, as ``save_pretrained`` writes it) and
a checkpoint whose ``arch`` is ``hf:DIR``, ``timm:NAME`` or ``torchvision:NAME`` (as ``train``
writes it) load through :mod:`.pretrained`, under the same trust rules.

Trust: a checkpoint may come from a stranger, so by default it is read with
``torch.load(weights_only=True)``, which unpickles tensors and plain data only (the reference
checkpoints of Cohen et al. and Salman et al., in the zip and the legacy format, are such files);
the model is then one of ours (:mod:`.architectures`), so the file holds numbers, never code. A
file that needs more (a pickled ``nn.Module``, any other Python class) is refused with one line,
because unpickling it can execute arbitrary code stored in it. TorchScript and ``torch.export``
files are refused too: they are programs (their ``forward`` comes from the file), and
``torch.export.load`` unpickles the archive's constants with plain :mod:`pickle`. ``trust=True``
(``--trust-checkpoint`` on the command line) reads all of these, running code from the file: only
for a file from a source you trust. :func:`torch_load` is the one reader of ``torch.save`` files
(checkpoints, ``train``'s resume, ``.pt`` data sets).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..errors import SmoothCertError
from ..noises import FAMILIES
from .architectures import (
    ARCHITECTURES,
    DEFAULT_DATASET,
    InputCenterLayer,
    NormalizeLayer,
    build_net,
    get_architecture,
)
from .pretrained import dir_sha256, is_hf_dir, is_pretrained_arch

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "adapt_state_dict",
    "torch_load",
    "TRUST_HINT",
    "load_model",
    "file_sha256",
    "train_noise",
]


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message, cut to its first sentence when long."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = lines[0]
    if len(line) > 120 and ". " in line:
        line = line[: line.index(". ") + 1]
    return line[:200]


# ----------------------------------------------------------------------------- saving
def save_checkpoint(
    path, model: nn.Module, arch: str, *, epoch: int | None = None, optimizer=None, **extra
) -> None:
    """Write ``{'arch', 'state_dict', 'epoch', 'optimizer', **extra}`` with ``torch.save``,
    atomically (a temporary file in the same folder, then ``os.replace``).

    ``optimizer`` is an optimizer (its ``state_dict()`` is stored), a state dict, or None."""
    reserved = {"arch", "state_dict", "epoch", "optimizer"} & set(extra)
    if reserved:
        raise SmoothCertError(
            f"save_checkpoint: {', '.join(sorted(reserved))} cannot be passed as extra entries"
        )
    if optimizer is not None and hasattr(optimizer, "state_dict"):
        optimizer = optimizer.state_dict()
    ckpt = {
        "arch": arch,
        "state_dict": model.state_dict(),
        "epoch": epoch,
        "optimizer": optimizer,
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)  # as open() would create it, not mkstemp's 0600
    os.close(fd)
    try:
        with open(tmp, "wb") as f:  # a file object: the archive's root folder is "archive"
            torch.save(ckpt, f)
        os.replace(tmp, path)
    except OSError as exc:
        raise SmoothCertError(f"cannot write checkpoint {path}: {_one_line(exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- key handling
def _strip_seq(key: str) -> str:
    return key[2:] if key.startswith("1.") else key


def _core(key: str) -> str:
    """A state dict key without the ``1.`` (Sequential) and ``module.`` (DataParallel) prefixes."""
    key = _strip_seq(key)
    if key.startswith("module."):
        key = key[7:]
    return key


def _first_layer_consts(state_dict) -> dict:
    """``0.means`` / ``0.sds`` stored by variants that made them buffers."""
    return {
        k[2:]: v
        for k, v in state_dict.items()
        if k in ("0.means", "0.sds") and isinstance(v, torch.Tensor)
    }


def adapt_state_dict(state_dict, model: nn.Module) -> tuple[OrderedDict, list[str]]:
    """Rename ``state_dict``'s keys to ``model``'s convention (with or without the DataParallel
    ``module.`` and Sequential ``1.`` prefixes; ``0.*`` first-layer entries dropped).

    Returns ``(new_state_dict, notes)``; the keys may still not fit: see :func:`load_checkpoint`."""
    expected = model.state_dict()
    prefix = next((p for p in ("1.module.", "1.") if any(k.startswith(p) for k in expected)), "")
    out: OrderedDict = OrderedDict()
    notes = []
    for key, value in state_dict.items():
        if key.startswith("0."):
            continue
        out[prefix + _core(key)] = value
    kept = [k for k in state_dict if not k.startswith("0.")]
    has_module = any(_strip_seq(k).startswith("module.") for k in kept)
    if prefix == "1." and has_module:
        notes.append("removed the DataParallel 'module.' prefix")
    elif prefix == "1.module." and not has_module:
        notes.append("added the DataParallel 'module.' prefix")
    if prefix and not all(k.startswith("1.") for k in kept):
        notes.append("added the '1.' prefix of Sequential(normalization, net)")
    if len(kept) != len(state_dict):
        notes.append("ignored the stored first-layer entries 0.*")
    # BatchNorm counters missing from very old checkpoints: keep the model's.
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in out:
            out[key] = value
    return out, notes


@functools.cache
def _arch_cores(arch: str) -> frozenset:
    """Core state dict keys of ``arch`` (built on the meta device: no memory, fast)."""
    with torch.device("meta"):
        net = build_net(arch, parallel=False)
    return frozenset(net.state_dict())


def _matching_archs(state_dict) -> list[str]:
    cores = {_core(k) for k in state_dict if not k.startswith("0.")}
    cores = {k for k in cores if not k.endswith("num_batches_tracked")}
    return [
        a
        for a in ARCHITECTURES
        if cores == {k for k in _arch_cores(a) if not k.endswith("num_batches_tracked")}
    ]


def _infer_shape(state_dict) -> tuple[int | None, int | None]:
    """``(num_classes, in_channels)`` read from the ``fc`` and first ``conv1`` weights."""
    k = c = None
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue
        core = _core(key)
        if core == "fc.weight" and value.dim() == 2:
            k = int(value.shape[0])
        elif core == "conv1.weight" and value.dim() == 4:
            c = int(value.shape[1])
    return k, c


def _short(keys, n: int = 3) -> str:
    keys = sorted(keys)
    more = f", ... +{len(keys) - n}" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# ----------------------------------------------------------------------------- reading files
def _archive_kind(path: Path) -> str | None:
    """'torchscript' or 'export' for those zip archives, else None (torch.save or not a zip)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    parts = [n.split("/") for n in names]
    if any(len(p) > 1 and p[1] == "code" for p in parts) or any(
        n.endswith("/constants.pkl") for n in names
    ):
        return "torchscript"
    if any(n.endswith("/archive_format") for n in names) or any(
        n.endswith("/models/model.json") for n in names
    ):
        return "export"
    return None


def _check_zip_crc(path: Path) -> None:
    """Corrupt bytes in a zip archive (torch.save, TorchScript) fail its CRC-32 checks, which
    torch does not make; reading them costs about 0.1 s per 200 MB."""
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except Exception as exc:  # BadZipFile, OSError, zlib errors, unsupported compression
        raise SmoothCertError(f"checkpoint {path} is corrupt: {_one_line(exc)}") from None
    if bad is not None:
        raise SmoothCertError(f"checkpoint {path} is corrupt: CRC mismatch in entry {bad}")


#: how to opt in to a file that needs code to load (the command line's flag and the API's)
TRUST_HINT = "pass --trust-checkpoint (API: trust=True) only if you trust the file's source"

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _refusal(exc: BaseException) -> str:
    """``' (posix.system)'``: the Python name the refused pickle asked for, when torch says it."""
    found = _GLOBAL.search(str(exc))
    return f" ({found.group(1)})" if found else ""


def torch_load(path, *, trust: bool = False, what: str = "checkpoint", hint: str = TRUST_HINT):
    """The object of a ``torch.save`` file (zip or legacy format), on the CPU.

    Untrusted (the default): ``torch.load(weights_only=True)``, which unpickles tensors and
    plain data only; a file that needs any other Python class or function is refused with one
    line naming it, since unpickling it can execute arbitrary code. ``trust=True``: a full
    ``torch.load``, which runs whatever the file's pickle calls. ``what`` names the file in
    messages ("checkpoint", "dataset"); ``hint`` says how to opt in. Every failure is a one-line
    :class:`SmoothCertError`."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        text = str(exc).lower()
        if not trust and ("weights only" in text or "weights_only" in text):
            raise SmoothCertError(
                f"{what} {path} needs unpickling code{_refusal(exc)} to load, "
                "which can execute arbitrary code stored in the file: "
                f"{hint}"
            ) from None
        raise SmoothCertError(
            f"cannot read {what} {path}: not a PyTorch file, or corrupt ({_one_line(exc)})"
        ) from None
    except (ModuleNotFoundError, AttributeError) as exc:  # trusted: a class not importable
        raise SmoothCertError(
            f"cannot unpickle {what} {path}: {_one_line(exc)} (a pickled "
            "object needs its class importable)"
        ) from None
    except Exception as exc:
        raise SmoothCertError(
            f"cannot read {what} {path}: not a PyTorch file, or truncated "
            f"/ corrupt ({_one_line(exc)})"
        ) from None


def _finish(path: Path, model: nn.Module, meta: dict, device):
    """``(model, meta)`` with the model in eval mode on ``device`` and the standard meta keys."""
    for key, default in (
        ("arch", None),
        ("dataset", None),
        ("epoch", None),
        ("input_center", None),
        ("notes", []),
    ):
        meta.setdefault(key, default)
    try:
        model = model.to(device)
    except Exception as exc:  # no such device, a TorchScript module pinned elsewhere, ...
        raise SmoothCertError(
            f"cannot move the model of {path} to {device}: {_one_line(exc)}"
        ) from None
    try:
        model.eval()
    except (NotImplementedError, RuntimeError):  # some exported graph modules refuse eval()
        pass
    return model, meta


def _load_archive(path: Path, kind: str, device, dataset, trust: bool):
    if not trust:
        how = (
            "a TorchScript program: loading it runs code stored in the file (its forward)"
            if kind == "torchscript"
            else "a torch.export archive: loading it unpickles "
            "its constants, which can execute arbitrary code stored in the file"
        )
        raise SmoothCertError(f"checkpoint {path} is {how}; {TRUST_HINT}")
    meta = {"arch": None, "format": kind, "dataset": dataset}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if kind == "torchscript":
                model = torch.jit.load(str(path), map_location=device)
            else:
                model = torch.export.load(str(path)).module()
    except Exception as exc:
        raise SmoothCertError(f"cannot load {kind} file {path}: {_one_line(exc)}") from None
    return _finish(path, model, meta, device)


def _load_hf_dir(path: Path, dataset, device, trust: bool):
    """A Hugging Face model folder as a checkpoint: meta ``{'arch': 'hf:PATH', 'format':
    'hf'}``; its normalisation comes from its preprocessor config, not from ``dataset``."""
    from .pretrained import load_hf_dir

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SmoothCertError(f"unknown device {device!r}; use e.g. cpu or cuda") from None
    model = load_hf_dir(path, trust=trust)
    meta = {
        "arch": f"hf:{path}",
        "format": "hf",
        "dataset": dataset,
        "pretrained": {k: v for k, v in model.info.items() if k != "hf_config"},
    }
    return _finish(path, model, meta, device)


def _is_state_dict(obj) -> bool:
    return (
        isinstance(obj, dict)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _resolve_dataset(dataset, meta: dict, arch: str) -> str:
    if dataset is not None:
        return os.fspath(dataset)
    if isinstance(meta.get("dataset"), str):
        return meta["dataset"]
    config = meta.get("config")
    if isinstance(config, dict) and isinstance(config.get("dataset"), str):
        return config["dataset"]
    return DEFAULT_DATASET[arch]


def _wants_input_center(meta: dict) -> bool:
    if isinstance(meta.get("input_center"), bool):
        return meta["input_center"]
    norm = meta.get("normalization")
    return isinstance(norm, str) and norm.lower() in ("input_center", "center", "inputcenter")


# ----------------------------------------------------------------------------- loading
def load_checkpoint(
    path,
    dataset: str | None = None,
    device="cpu",
    *,
    input_center: bool | None = None,
    trust: bool = False,
):
    """``(model, meta)`` from a checkpoint file; the model is in eval mode on ``device``.

    Reference format: ``get_architecture(meta['arch'], dataset)`` with the state dict loaded
    strictly, after fixing the known key variants (DataParallel ``module.`` prefix present or
    absent, a bare net state dict without ``1.``). ``dataset`` (the normalization constants)
    defaults to ``meta['dataset']``, ``meta['config']['dataset']``, then the arch's data set.
    ``input_center`` (None: from ``meta['input_center']`` / ``meta['normalization']``, or
    ``0.means`` without ``0.sds`` in the keys) uses Salman et al.'s InputCenterLayer: its
    checkpoints have the same keys as Cohen et al.'s, so it must be said. The number of classes
    and of input channels are read from the weights. A state dict without ``arch`` gets the
    known architecture whose keys it fits.

    ``trust``: the file is read with ``torch.load(weights_only=True)`` (tensors and plain data,
    never code) unless ``trust=True``, which also reads TorchScript, ``torch.export`` (.pt2) and
    pickled ``nn.Module`` files (meta ``{'arch': None, 'format': ...}``) by running code stored
    in them: only for a file from a source you trust (see the module notes). ``meta`` holds
    the file's entries but ``state_dict`` and ``optimizer``, plus ``arch``, ``dataset`` (the
    one used), ``format`` ("state_dict", "torchscript", "export" or "module"),
    ``input_center`` and ``notes`` (key fixes applied).
    Every failure is a one-line :class:`SmoothCertError`."""
    path = Path(path)
    if not path.exists():
        raise SmoothCertError(f"checkpoint {path} not found")
    if is_hf_dir(path):  # a Hugging Face model folder (config.json + weights)
        return _load_hf_dir(path, dataset, device, trust)
    device = _check_file(path, device)
    _check_zip_crc(path)
    kind = _archive_kind(path)
    if kind is not None:
        return _load_archive(path, kind, device, dataset, trust)
    _check_torch_file(path)
    obj = torch_load(path, trust=trust)
    if isinstance(obj, nn.Module):
        return _finish(path, obj, {"format": "module", "dataset": dataset}, device)
    if (
        isinstance(obj, dict)
        and isinstance(obj.get("model"), nn.Module)
        and "state_dict" not in obj
    ):
        meta = {k: v for k, v in obj.items() if k not in ("model", "optimizer")}
        meta.update(
            format="module", dataset=dataset if dataset is not None else meta.get("dataset")
        )
        return _finish(path, obj["model"], meta, device)
    state_dict, meta = _split_checkpoint(path, obj)
    notes: list[str] = []
    arch = _checkpoint_arch(path, meta, state_dict, notes)
    if is_pretrained_arch(arch):  # hf: / timm: / torchvision:, rebuilt from 'pretrained'
        from .pretrained import load_pretrained_checkpoint

        model = load_pretrained_checkpoint(path, meta, state_dict, trust=trust)
        meta.update(
            arch=arch,
            dataset=os.fspath(dataset) if dataset is not None else meta.get("dataset"),
            format="state_dict",
            input_center=False,
            notes=notes,
        )
        return _finish(path, model, meta, device)
    if not isinstance(arch, str) or arch.lower() not in ARCHITECTURES:
        raise SmoothCertError(
            f"checkpoint {path} has unknown arch {arch!r}; known: {', '.join(ARCHITECTURES)}"
        )
    model, ds, input_center = _reference_model(
        path, arch.lower(), state_dict, meta, dataset, input_center, notes
    )
    meta.update(
        arch=arch.lower(),
        dataset=ds,
        format="state_dict",
        input_center=bool(input_center),
        notes=notes,
    )
    return _finish(path, model, meta, device)


def _check_file(path: Path, device) -> torch.device:
    """A non-empty regular file, and the device as a ``torch.device``."""
    if not path.is_file():
        raise SmoothCertError(
            f"checkpoint {path} is not a file (nor a Hugging Face model folder with a config.json)"
        )
    if path.stat().st_size == 0:
        raise SmoothCertError(f"checkpoint {path} is empty")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SmoothCertError(f"unknown device {device!r}; use e.g. cpu or cuda") from None


def _check_torch_file(path: Path) -> None:
    """A torch.save zip archive (with its central directory) or a pickle, by its first bytes."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if not zipfile.is_zipfile(path):
        if magic == b"PK\x03\x04":
            raise SmoothCertError(
                f"checkpoint {path} is truncated or corrupt (a zip archive "
                "without its central directory)"
            )
        if not magic.startswith(b"\x80"):
            raise SmoothCertError(
                f"checkpoint {path} is not a PyTorch file (neither a "
                "torch.save zip archive nor a pickle)"
            )


def _split_checkpoint(path: Path, obj) -> tuple[dict, dict]:
    """``(state_dict, meta)`` of a bare state dict or a checkpoint dict (meta without the
    optimizer)."""
    if _is_state_dict(obj):
        return obj, {}
    if not isinstance(obj, dict):
        raise SmoothCertError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a model, a "
            "state dict or a checkpoint dict"
        )
    sd_key = next((k for k in ("state_dict", "model_state_dict") if k in obj), None)
    if sd_key is None:
        keys = _short([str(k) for k in obj], 6)
        raise SmoothCertError(f"checkpoint {path} has no 'state_dict' entry (found: {keys})")
    state_dict = obj[sd_key]
    meta = {k: v for k, v in obj.items() if k not in (sd_key, "optimizer")}
    if not _is_state_dict(state_dict):
        raise SmoothCertError(f"checkpoint {path}: '{sd_key}' is not a dict of tensors")
    return state_dict, meta


def _checkpoint_arch(path: Path, meta: dict, state_dict, notes: list[str]):
    """``meta['arch']``, else the first known architecture whose keys the weights fit (noted)."""
    arch = meta.get("arch")
    if arch is None:
        fits = _matching_archs(state_dict)
        if not fits:
            raise SmoothCertError(
                f"checkpoint {path} names no 'arch' and its keys fit no known "
                f"architecture ({', '.join(ARCHITECTURES)})"
            )
        arch = fits[0]
        notes.append(f"arch {arch} inferred from the keys")
    return arch


def _reference_model(
    path: Path, arch: str, state_dict, meta: dict, dataset, input_center, notes: list[str]
):
    """``(model, dataset, input_center)``: a reference architecture built with the shape read
    from the weights, the state dict loaded strictly after the known key fixes (``notes``) and
    the normalization constants stored in it applied."""
    _check_keys(path, arch, state_dict)
    ds = _resolve_dataset(dataset, meta, arch)
    consts = _first_layer_consts(state_dict)
    if input_center is None:
        input_center = _wants_input_center(meta) or ("means" in consts and "sds" not in consts)
    num_classes, in_channels = _infer_shape(state_dict)
    try:
        model = get_architecture(
            arch,
            ds,
            num_classes=num_classes,
            in_channels=in_channels,
            input_center=bool(input_center),
        )
    except SmoothCertError as exc:
        raise SmoothCertError(f"checkpoint {path} (arch {arch}): {exc}") from None
    new_sd, fixes = adapt_state_dict(state_dict, model)
    notes += fixes
    _check_fit(path, arch, new_sd, model)
    try:
        model.load_state_dict(new_sd, strict=True)
    except RuntimeError as exc:
        raise SmoothCertError(
            f"checkpoint {path} does not fit arch {arch}: {_one_line(exc)}"
        ) from None
    _apply_consts(path, model[0], consts)
    return model, ds, input_center


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _check_keys(path: Path, arch: str, state_dict) -> None:
    """One-line error when the keys of ``state_dict`` (whatever their prefixes) are not those
    of ``arch``; names are given in ``arch``'s own convention (``1.`` or ``1.module.``)."""
    bn = "num_batches_tracked"
    wanted = {k for k in _arch_cores(arch) if not k.endswith(bn)}
    given = {_core(k) for k in state_dict if not k.startswith("0.") and not k.endswith(bn)}
    if given == wanted:
        return
    prefix = "1.module." if arch == "resnet50" else "1."
    missing = {prefix + k for k in wanted - given}
    unexpected = {prefix + k for k in given - wanted}
    parts = []
    if missing:
        parts.append(f"{_count(len(missing), 'missing key')} ({_short(missing)})")
    if unexpected:
        parts.append(f"{_count(len(unexpected), 'unexpected key')} ({_short(unexpected)})")
    fits = [a for a in _matching_archs(state_dict) if a != arch]
    hint = f"; the keys fit arch {fits[0]}" if fits else ""
    raise SmoothCertError(f"checkpoint {path} does not fit arch {arch}: {', '.join(parts)}{hint}")


def _check_fit(path: Path, arch: str, new_sd, model: nn.Module) -> None:
    """One-line error when the keys or shapes of ``new_sd`` do not fit ``model``."""
    expected = model.state_dict()
    if set(expected) != set(new_sd):  # not expected after _check_keys
        missing, unexpected = set(expected) - set(new_sd), set(new_sd) - set(expected)
        raise SmoothCertError(
            f"checkpoint {path} does not fit arch {arch}: missing "
            f"{_short(missing) or 'none'}, unexpected "
            f"{_short(unexpected) or 'none'}"
        )
    for key, value in new_sd.items():
        want = expected[key].shape
        if tuple(value.shape) != tuple(want):
            raise SmoothCertError(
                f"checkpoint {path} does not fit arch {arch}: {key} has shape "
                f"{tuple(value.shape)} in the checkpoint, {tuple(want)} in "
                "the model"
            )


def _apply_consts(path: Path, first: nn.Module, consts: dict) -> None:
    """Use the ``0.means`` / ``0.sds`` a checkpoint stored, when it stored them."""
    for name in ("means", "sds"):
        if name not in consts or not hasattr(first, name):
            continue
        value = consts[name].to(torch.float32).reshape(-1)
        if isinstance(first, (NormalizeLayer, InputCenterLayer)):
            current = getattr(first, name)
            if value.numel() != current.numel() and current.numel() != 1:
                raise SmoothCertError(
                    f"checkpoint {path}: 0.{name} has {value.numel()} values, "
                    f"the data set has {current.numel()} channels"
                )
            setattr(first, name, value.clone())


# ----------------------------------------------------------------------------- loading for a run
def load_model(path: str, dataset: str, device, trust: bool = False):
    """``(model, meta)`` from a checkpoint file, in eval mode on ``device``; ``trust`` lets
    it run code stored in the file (``--trust-checkpoint``, see ``load_checkpoint``)."""
    p = Path(path)
    if not p.exists():
        raise SmoothCertError(f"checkpoint {path} not found")
    if not p.is_file() and not p.is_dir():  # a folder: a Hugging Face model, or an error
        raise SmoothCertError(f"checkpoint {path} is not a file")
    try:
        return load_checkpoint(str(p), dataset=dataset, device=device, trust=trust)
    except SmoothCertError:
        raise
    except Exception as exc:  # unreadable pickle, wrong state dict, ...
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(f"cannot load checkpoint {path}: {msg}") from None


def file_sha256(path) -> str:
    """SHA-256 of a checkpoint file (of its files, for a Hugging Face model folder)."""
    if Path(path).is_dir():  # a Hugging Face model folder
        return dir_sha256(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain_number(value) -> float | None:
    """``value`` as a finite float when it is a plain int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def train_noise(meta: dict) -> dict | None:
    """``{"noise", "k", "sigma", "sigma0"}``: the noise the checkpoint of ``meta`` (from
    :func:`load_model`) records it was trained with (``config`` of a ``smoothcert train``
    checkpoint, else its ``noise`` entry); ``sigma`` 0 is clean training. None when the file
    does not record it (reference checkpoints of Cohen et al., pretrained models) or records it
    in another shape (a file's entries are data to check, not to trust)."""
    for entry in (meta.get("config"), meta.get("noise")):
        if not isinstance(entry, dict):
            continue
        name = entry.get("noise", entry.get("name"))
        k, sigma = _plain_number(entry.get("k")), _plain_number(entry.get("sigma"))
        sigma0 = entry.get("sigma0")
        if sigma0 is not None:
            sigma0 = _plain_number(sigma0)
            if sigma0 is None:
                continue
        if (
            name in tuple(FAMILIES)
            and k is not None
            and sigma is not None
            and k >= 0
            and sigma >= 0
        ):
            return {"noise": name, "k": k, "sigma": sigma, "sigma0": sigma0}
    return None
