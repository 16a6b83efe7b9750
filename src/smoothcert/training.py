"""Noise-augmented training of a base classifier (the training of Cohen et al., 2019).

Same semantics as ``code/train.py`` of locuslab/smoothing: SGD with momentum and weight decay,
a step learning-rate schedule, cross-entropy loss, and every training image perturbed by fresh
noise in [0, 1] input space (the model's own normalisation layer comes after the noise). The
test pass of each epoch also sees noise, so ``test acc`` is the accuracy of the base classifier
under the smoothing noise. The paper trains with Gaussian noise; any family of
:mod:`smoothcert.noises` can be used (``NoiseSpec``).

Files written in ``outdir`` (the reference formats):

- ``log``: tab-separated, header ``epoch time lr train loss train acc testloss test acc``, one
  row per finished epoch (accuracies in percent, ``time`` a ``H:MM:SS.ffffff`` duration);
- ``checkpoint.pth.tar``: ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` plus ``dataset``,
  ``noise`` (the noise parameters), ``scheduler`` and ``config`` (everything that determines
  the run), written by :func:`smoothcert.models.save_checkpoint`, which replaces it atomically,
  after every epoch (``epoch`` counts the epochs done, as in the reference).

Re-running with the same ``outdir`` resumes from the checkpoint (model, optimizer, scheduler).
The random streams (shuffling, training noise, test noise, torch's global RNG) are re-seeded at
the start of every epoch from ``(seed, epoch)``, so an interrupted and resumed run ends with the
same weights as an uninterrupted one (bit for bit on CPU). A checkpoint written with a
different configuration is refused with an error that names the differing fields; ``epochs``
may differ (a longer run continues a shorter one).
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .device import resolve_device
from .errors import SmoothCertError
from .noises import FAMILIES, Noise, make_noise

CHECKPOINT_NAME = "checkpoint.pth.tar"
LOG_NAME = "log"
LOG_HEADER = "epoch\ttime\tlr\ttrain loss\ttrain acc\ttestloss\ttest acc"

# fields of ``config`` that must agree to resume (``epochs``, ``workers``, ``device`` need not)
CONFIG_FIELDS = (
    "dataset",
    "arch",
    "noise",
    "k",
    "sigma",
    "batch",
    "lr",
    "lr_step_size",
    "gamma",
    "momentum",
    "weight_decay",
    "seed",
)

# independent random streams, re-seeded every epoch
_SHUFFLE, _TRAIN_NOISE, _TEST_NOISE, _GLOBAL, _INIT = range(5)


@dataclass(frozen=True)
class NoiseSpec:
    """The training noise: a family with ``k`` and either ``sigma`` or ``sigma0`` (the paper's
    matching rule sigma = sqrt((d-1)/(d-1-k)) sigma0). ``sigma=0`` means no noise."""

    name: str = "gaussian"
    k: float = 0.0
    sigma: float | None = None
    sigma0: float | None = None

    @classmethod
    def coerce(cls, spec) -> NoiseSpec:
        if spec is None:
            return cls(sigma=0.0)
        if isinstance(spec, NoiseSpec):
            return spec
        if isinstance(spec, dict):
            unknown = set(spec) - {"name", "noise", "k", "sigma", "sigma0"}
            if unknown:
                raise SmoothCertError(f"unknown noise fields: {', '.join(sorted(unknown))}")
            spec = dict(spec)
            name = spec.pop("noise", None) or spec.pop("name", "gaussian")
            spec.pop("name", None)
            return cls(name=name, **spec)
        raise SmoothCertError(f"noise must be a NoiseSpec or a dict, got {type(spec).__name__}")

    @property
    def clean(self) -> bool:
        return self.sigma0 is None and self.sigma is not None and float(self.sigma) == 0.0

    def build(self, dim: int) -> Noise | None:
        """The noise on R^dim, or None for clean training."""
        if self.name not in FAMILIES:
            raise SmoothCertError(
                f"unknown noise {self.name!r}; choose one of {', '.join(FAMILIES)}"
            )
        if self.clean:
            if self.k:
                raise SmoothCertError("sigma = 0 (no noise) takes no shape parameter k")
            return None
        return make_noise(self.name, dim, k=self.k, sigma=self.sigma, sigma0=self.sigma0)

    def params(self, dim: int) -> dict:
        """Resolved parameters (stored in the checkpoint under ``noise``)."""
        noise = self.build(dim)
        return {
            "noise": self.name,
            "dim": int(dim),
            "k": float(self.k),
            "sigma": 0.0 if noise is None else noise.sigma,
            "sigma0": None if self.sigma0 is None else float(self.sigma0),
        }


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: nn.Module
    outdir: Path
    checkpoint: Path
    log: Path
    epoch: int  # epochs trained in total
    start_epoch: int  # 0 for a fresh run, the checkpoint's epoch when resumed
    history: list[dict] = field(default_factory=list)  # rows of this call

    @property
    def resumed(self) -> bool:
        return self.start_epoch > 0


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(stream), 0x5C])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> 1)


def _check_hyper(epochs, batch, lr, lr_step_size, gamma, momentum, weight_decay, workers):
    def need(ok, msg):
        if not ok:
            raise SmoothCertError(msg)

    need(isinstance(epochs, int) and epochs >= 0, f"epochs must be an integer >= 0, got {epochs}")
    need(isinstance(batch, int) and batch >= 1, f"batch must be an integer >= 1, got {batch}")
    need(math.isfinite(lr) and lr > 0, f"lr must be a finite number > 0, got {lr}")
    need(
        isinstance(lr_step_size, int) and lr_step_size >= 1,
        f"lr_step_size must be an integer >= 1, got {lr_step_size}",
    )
    need(math.isfinite(gamma) and gamma > 0, f"gamma must be a finite number > 0, got {gamma}")
    need(
        math.isfinite(momentum) and momentum >= 0,
        f"momentum must be a finite number >= 0, got {momentum}",
    )
    need(
        math.isfinite(weight_decay) and weight_decay >= 0,
        f"weight_decay must be a finite number >= 0, got {weight_decay}",
    )
    need(
        isinstance(workers, int) and workers >= 0, f"workers must be an integer >= 0, got {workers}"
    )


def config_mismatch(stored: dict, wanted: dict) -> list[str]:
    """The fields of ``CONFIG_FIELDS`` on which two configurations differ, as
    ``'field: checkpoint A, requested B'``."""
    out = []
    for key in CONFIG_FIELDS:
        a, b = stored.get(key), wanted.get(key)
        if isinstance(a, float) and isinstance(b, float):
            same = math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
        else:
            same = a == b
        if not same:
            out.append(f"{key}: checkpoint {a!r}, requested {b!r}")
    return out


def _read_checkpoint(path: Path) -> dict:
    """The checkpoint to resume from, read as tensors and plain data (never code: a file
    that needs unpickling code is refused, as ``train`` never writes one)."""
    from .models.checkpoint import torch_load

    ckpt = torch_load(path, hint="smoothcert train never writes such a file; use a new OUTDIR")
    if not isinstance(ckpt, dict) or not {"epoch", "arch", "state_dict"} <= set(ckpt):
        raise SmoothCertError(f"{path} is not a smoothcert/reference training checkpoint")
    return ckpt


def format_log_row(
    epoch: int,
    seconds: float,
    lr: float,
    train_loss: float,
    train_acc: float,
    test_loss: float,
    test_acc: float,
) -> str:
    """One row of the reference log (``{:.3}`` numbers, accuracies in percent)."""
    duration = str(datetime.timedelta(seconds=round(seconds, 6)))
    numbers = "\t".join(f"{v:.3}" for v in (lr, train_loss, train_acc, test_loss, test_acc))
    return f"{epoch}\t{duration}\t{numbers}"


def read_log(path) -> list[dict]:
    """Rows of a training log as dicts (numbers parsed; ``time`` kept as text)."""
    rows = []
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0].split("\t") != LOG_HEADER.split("\t"):
        raise SmoothCertError(f"{path} is not a training log (bad header)")
    names = lines[0].split("\t")
    for n, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != len(names):
            raise SmoothCertError(f"{path}:{n}: expected {len(names)} fields, got {len(parts)}")
        row = dict(zip(names, parts, strict=True))
        try:
            row = {
                k: (v if k == "time" else int(v) if k == "epoch" else float(v))
                for k, v in row.items()
            }
        except ValueError:
            raise SmoothCertError(f"{path}:{n}: malformed number") from None
        rows.append(row)
    return rows


def _prepare_log(path: Path, keep_epochs: int) -> None:
    """Start the log, or keep its header and the rows of epochs < keep_epochs (rows of an epoch
    whose checkpoint was never written are dropped: that epoch is trained again)."""
    kept = []
    if keep_epochs > 0 and path.exists():
        for line in path.read_text().splitlines()[1:]:
            head = line.split("\t", 1)[0]
            if head.isdigit() and int(head) < keep_epochs:
                kept.append(line)
    try:
        path.write_text("\n".join([LOG_HEADER, *kept]) + "\n")
    except OSError as exc:
        raise SmoothCertError(f"cannot write {path}: {exc.strerror or exc}") from None


def _run_epoch(
    model, loader, criterion, device, noise, generator, optimizer=None, desc="", progress=False
):
    """One pass over ``loader`` (training when ``optimizer`` is given): mean loss, acc (%)."""
    from tqdm.auto import tqdm

    training = optimizer is not None
    model.train(training)
    total_loss, correct, count = 0.0, 0, 0
    bar = tqdm(
        loader, desc=desc, unit="batch", leave=False, disable=not progress, dynamic_ncols=True
    )
    with torch.set_grad_enabled(training):
        for inputs, targets in bar:
            inputs = inputs.to(device)
            targets = targets.to(device)
            if noise is not None:
                z = noise.sample(inputs.shape[0], generator=generator, device=device)
                inputs = inputs + z.to(inputs.dtype).view_as(inputs)
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            if training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            n = targets.shape[0]
            total_loss += loss.item() * n
            correct += int((outputs.argmax(1) == targets).sum())
            count += n
            bar.set_postfix(loss=f"{total_loss / count:.3f}", acc=f"{100 * correct / count:.1f}")
    bar.close()
    if count == 0:
        raise SmoothCertError("the data set is empty")
    return total_loss / count, 100.0 * correct / count


def _initial_model(arch: str, dataset: str, train_set, seed: int, weights):
    """The architecture with its initial weights, which depend on ``seed`` only."""
    from .models import get_architecture

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_epoch_seed(seed, 0, _INIT))
        return get_architecture(
            arch,
            dataset,
            num_classes=int(train_set.num_classes),
            in_channels=int(train_set.input_shape[0]),
            **({} if weights is None else {"weights": weights}),
        )


def _train_config(dataset, arch, spec: NoiseSpec, noise_params: dict, hyper: dict, weights, resize):
    """The configuration stored in the checkpoint (a resumed run must match it); ``hyper``: the
    training's hyperparameters (:func:`_hyper_config`)."""
    config = {
        "dataset": str(dataset),
        "arch": str(arch),
        "noise": spec.name,
        "k": float(spec.k),
        "sigma": float(noise_params["sigma"]),
        "sigma0": noise_params["sigma0"],
        **hyper,
    }
    if weights is not None:
        config["weights"] = str(weights)
    if resize is not None:  # the noise and the images are in the resized pixel space
        config["resize"] = resize
    return config


def _hyper_config(batch, lr, lr_step_size, gamma, momentum, weight_decay, seed, epochs) -> dict:
    """The hyperparameters' fields of the configuration, in their order and types."""
    return {
        "batch": int(batch),
        "lr": float(lr),
        "lr_step_size": int(lr_step_size),
        "gamma": float(gamma),
        "momentum": float(momentum),
        "weight_decay": float(weight_decay),
        "seed": int(seed),
        "epochs": int(epochs),
    }


def _resume(
    ckpt_path: Path, config: dict, model, optimizer, scheduler, epochs: int, verbose: bool
) -> int:
    """Load the checkpoint of a run with the same ``config`` into the model, optimizer and
    scheduler; the number of epochs it has done."""
    ckpt = _read_checkpoint(ckpt_path)
    stored = ckpt.get("config")
    if not isinstance(stored, dict):
        raise SmoothCertError(f"{ckpt_path} has no training configuration; use a new outdir")
    diff = config_mismatch(stored, config)
    if diff:
        raise SmoothCertError(
            f"{ckpt_path} was trained with a different configuration "
            f"({'; '.join(diff)}); use the same options or another outdir"
        )
    model.load_state_dict(ckpt["state_dict"])
    if "optimizer" in ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    if "scheduler" in ckpt:
        scheduler.load_state_dict(ckpt["scheduler"])
    start = int(ckpt["epoch"])
    if verbose:
        if start >= epochs:
            print(f"{ckpt_path}: already trained for {start} epoch(s) (>= {epochs}); nothing to do")
        else:
            print(f"resuming {ckpt_path} after epoch {start}")
    return start


def _epoch(
    model,
    optimizer,
    train_set,
    test_set,
    train_noise,
    dev,
    epoch: int,
    epochs: int,
    batch: int,
    workers: int,
    seed: int,
    progress: bool,
) -> dict:
    """One epoch of training and the test pass, each with its own seeded streams; the history
    entry (the scheduler is stepped by the caller)."""
    from torch.utils.data import DataLoader

    pin = dev.type == "cuda"
    criterion = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(_epoch_seed(seed, epoch, _SHUFFLE))
    train_gen = torch.Generator(device=dev).manual_seed(_epoch_seed(seed, epoch, _TRAIN_NOISE))
    test_gen = torch.Generator(device=dev).manual_seed(_epoch_seed(seed, epoch, _TEST_NOISE))
    train_loader = DataLoader(
        train_set,
        batch_size=batch,
        shuffle=True,
        generator=shuffle,
        num_workers=workers,
        pin_memory=pin,
    )
    test_loader = DataLoader(
        test_set, batch_size=batch, shuffle=False, num_workers=workers, pin_memory=pin
    )
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(_epoch_seed(seed, epoch, _GLOBAL))
        lr_now = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = _run_epoch(
            model,
            train_loader,
            criterion,
            dev,
            train_noise,
            train_gen,
            optimizer,
            desc=f"epoch {epoch + 1}/{epochs}",
            progress=progress,
        )
        test_loss, test_acc = _run_epoch(
            model,
            test_loader,
            criterion,
            dev,
            train_noise,
            test_gen,
            desc=f"test {epoch + 1}/{epochs}",
            progress=progress,
        )
    return {
        "epoch": epoch,
        "lr": lr_now,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
    }


def _open_run(
    out: Path, outdir, config: dict, model, optimizer, scheduler, epochs: int, verbose: bool
) -> int:
    """The first epoch to train: resume the checkpoint in ``out`` (same configuration), or
    create the folder; the log keeps the rows of the epochs done."""
    ckpt_path, log_path = out / CHECKPOINT_NAME, out / LOG_NAME
    start = 0
    if ckpt_path.exists():
        start = _resume(ckpt_path, config, model, optimizer, scheduler, epochs, verbose)
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SmoothCertError(f"cannot create OUTDIR {outdir}: {exc.strerror or exc}") from None
    if start < epochs:
        _prepare_log(log_path, start)
    return start


def _print_epoch(h: dict, epochs: int, seconds: float) -> None:
    print(
        f"epoch {h['epoch'] + 1}/{epochs}  lr {h['lr']:.3g}  train loss "
        f"{h['train_loss']:.4f}  train acc {h['train_acc']:.2f}%  test loss "
        f"{h['test_loss']:.4f}  test acc {h['test_acc']:.2f}%  ({seconds:.1f} s)",
        flush=True,
    )


def _append_log(log_path: Path, row: str) -> None:
    try:
        with open(log_path, "a") as f:
            f.write(row + "\n")
    except OSError as exc:
        raise SmoothCertError(f"cannot write {log_path}: {exc.strerror or exc}") from None


def train(
    dataset: str,
    arch: str,
    outdir,
    noise=None,
    *,
    epochs: int = 90,
    batch: int = 256,
    lr: float = 0.1,
    lr_step_size: int = 30,
    gamma: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    workers: int = 0,
    device=None,
    seed: int = 0,
    data_dir=None,
    progress: bool = True,
    verbose: bool = True,
    weights=None,
) -> TrainResult:
    """Train ``arch`` on ``dataset`` with noise augmentation, resuming from ``outdir``.

    ``arch`` is a reference architecture or a model of another library (``hf:DIR``,
    ``timm:NAME``, ``torchvision:NAME``; see :mod:`smoothcert.models.pretrained`), fine-tuned
    with its own normalisation inside; ``weights`` is a local weights file for timm /
    torchvision (random weights otherwise). The checkpoint records ``arch`` as given and, for
    those models, a ``pretrained`` entry (plain data) from which certify rebuilds the model.

    ``noise`` is a :class:`NoiseSpec` or a dict ``{"noise"|"name", "k", "sigma"|"sigma0"}``
    (None: clean training). ``progress`` shows a tqdm bar per epoch, ``verbose`` prints one line
    per epoch (the log row) and the resume notes. Returns a :class:`TrainResult`; the model is in
    eval mode on ``device``."""
    from .data import load_dataset
    from .models import save_checkpoint
    from .models.pretrained import checkpoint_extra, resize_data

    spec = NoiseSpec.coerce(noise)
    _check_hyper(
        epochs,
        batch,
        float(lr),
        lr_step_size,
        float(gamma),
        float(momentum),
        float(weight_decay),
        workers,
    )
    dev = resolve_device(device)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise SmoothCertError(f"OUTDIR {outdir} exists and is not a folder")
    train_set = load_dataset(dataset, "train", root=data_dir)
    test_set = load_dataset(dataset, "test", root=data_dir)
    model = _initial_model(arch, dataset, train_set, seed, weights)
    # a model with a fixed input size: the data resized to it, before the noise
    train_set, resize = resize_data(train_set, model, note=verbose)
    test_set, _ = resize_data(test_set, model, note=False)
    dim = int(np.prod(train_set.input_shape))
    noise_params = spec.params(dim)
    train_noise = spec.build(dim)
    hyper = _hyper_config(batch, lr, lr_step_size, gamma, momentum, weight_decay, seed, epochs)
    config = _train_config(dataset, arch, spec, noise_params, hyper, weights, resize)

    ckpt_path, log_path = out / CHECKPOINT_NAME, out / LOG_NAME
    model = model.to(dev)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step_size, gamma=gamma)
    start = _open_run(out, outdir, config, model, optimizer, scheduler, epochs, verbose)

    history = []
    for epoch in range(start, epochs):
        before = time.time()
        h = _epoch(
            model,
            optimizer,
            train_set,
            test_set,
            train_noise,
            dev,
            epoch,
            epochs,
            batch,
            workers,
            seed,
            progress,
        )
        scheduler.step()
        seconds = time.time() - before
        _append_log(
            log_path,
            format_log_row(
                epoch,
                seconds,
                h["lr"],
                h["train_loss"],
                h["train_acc"],
                h["test_loss"],
                h["test_acc"],
            ),
        )
        save_checkpoint(
            ckpt_path,
            model,
            arch,
            epoch=epoch + 1,
            optimizer=optimizer,
            dataset=str(dataset),
            noise=noise_params,
            scheduler=scheduler.state_dict(),
            config=config,
            **checkpoint_extra(model),
        )
        history.append(
            {"epoch": epoch, "time": seconds, **{k: v for k, v in h.items() if k != "epoch"}}
        )
        if verbose:
            _print_epoch(h, epochs, seconds)
    model.eval()
    return TrainResult(
        model=model,
        outdir=out,
        checkpoint=ckpt_path,
        log=log_path,
        epoch=max(start, epochs),
        start_epoch=start,
        history=history,
    )


__all__ = [
    "NoiseSpec",
    "TrainResult",
    "train",
    "read_log",
    "format_log_row",
    "config_mismatch",
    "CHECKPOINT_NAME",
    "LOG_NAME",
    "LOG_HEADER",
    "CONFIG_FIELDS",
]
