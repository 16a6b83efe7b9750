"""The torch device a computation runs on: named, or chosen (cuda when available), and checked."""

from __future__ import annotations

import torch

from .errors import SmoothCertError


def check_device(device: torch.device) -> torch.device:
    """``device`` if noise can be drawn and models run there, else a :class:`SmoothCertError`
    (the meta device holds no data; cuda without CUDA, or a missing GPU index, ...)."""
    if device.type == "meta":
        raise SmoothCertError("the meta device holds no data; use e.g. cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SmoothCertError(f"device {device} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SmoothCertError(
                f"device {device} requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible"
            )
    try:
        torch.Generator(device=device)
        torch.empty(1, device=device)
    except Exception as exc:  # noqa: BLE001 - a backend torch was not built with, ...
        msg = str(exc).strip().splitlines()
        raise SmoothCertError(
            f"device {device} is not usable: {msg[0] if msg else type(exc).__name__}"
        ) from None
    return device


def resolve_device(device=None) -> torch.device:
    """A checked torch device from a name, a ``torch.device`` or None / "auto" (cuda when
    available, else cpu)."""
    if device is None or device in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise SmoothCertError(f"unknown device {device!r}; use e.g. cpu or cuda") from None
    return check_device(device)
