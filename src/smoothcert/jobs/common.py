"""What :func:`~smoothcert.jobs.certify_file` and :func:`~smoothcert.jobs.predict_file` share.

- :func:`format_command`: the ``smoothcert ...`` command line recorded in the configuration;
- :func:`load_inputs`: device, data set, model (resized data for a fixed input size), noise and
  the selected indices, checked (every problem a one-line :class:`SmoothCertError`);
- :func:`source_config`: the first fields of OUTFILE.config.json (command, version, data, model
  and noise);
- :func:`write_rows`: the results file opened (resumed) through the process's job (one process or
  a torchrun shard, :mod:`smoothcert.distributed`), the missing rows computed under a progress
  bar, the job finished (part files merged); returns a :class:`RunSummary`;
- :func:`write_each`: one row per input, timed, in order (the loop of every kind of run);
- :func:`stop_cell` / :func:`check_samples_and_stop`: the ``samples`` and ``stop`` cells of the
  rows of sequential (``adaptive``) runs.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import SmoothCertError

#: a ``stop`` cell: a stopping reason with its spaces written as ``_``
STOP_CELL = re.compile(r"[0-9a-z/_]+")


@dataclass(frozen=True)
class RunSummary:
    """What one call of a job did: its OUTFILE, how many inputs the run selects, how many of
    them this process computed now (the others were done already, or belong to other shards),
    the confidence line printed (None when none is), and the exit status (0: done, or this
    shard's part written)."""

    outfile: Path
    selected: int
    computed: int
    confidence: str | None
    status: int


@dataclass
class Inputs:
    """What a run works on (:func:`load_inputs`)."""

    device: object
    dataset: object
    model: object
    meta: dict
    resize: list[int] | None
    noise: object
    indices: list[int]


def format_command(name: str, positionals: Iterable, options: dict) -> str:
    """``smoothcert NAME POS... --opt value ...`` (None and False options left out; a list or
    tuple gives its values after the flag: ``--radii 0.25 0.5``)."""
    words = ["smoothcert", name, *map(str, positionals)]
    for flag, value in options.items():
        if value is None or value is False:
            continue
        words.append(flag)
        if isinstance(value, (list, tuple)):
            words.extend(map(str, value))
        elif value is not True:
            words.append(str(value))
    return shlex.join(words)


def load_data(name: str, split: str, data_dir):
    """The ``split`` of data set ``name`` (under ``data_dir``); a one-line error otherwise."""
    from ..data import load_dataset

    try:
        return load_dataset(name, split, root=data_dir)
    except SmoothCertError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(f"cannot load dataset {name!r} ({split}): {msg}") from None


def probe_model(model, x, dataset, device) -> None:
    """Run the model once on a clean input: a clear error when it does not fit the data.

    The model's outputs must be the data set's classes. A data set that read its number of
    classes off its labels (``num_classes_inferred``: a .npz / .pt file) may hold a subset of
    the model's classes: it then takes the model's number of outputs."""
    import torch

    num_classes = int(dataset.num_classes)
    try:
        with torch.no_grad():
            out = model(x.unsqueeze(0).to(device))
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SmoothCertError(
            f"the model does not accept inputs of shape {tuple(x.shape)} from this dataset: {msg}"
        ) from None
    if (
        getattr(dataset, "num_classes_inferred", False)
        and isinstance(out, torch.Tensor)
        and out.dim() == 2
        and out.shape[0] == 1
        and out.shape[1] >= num_classes
    ):
        dataset.num_classes = num_classes = int(out.shape[1])  # labels: some of its classes
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SmoothCertError(
            f"the model returns {shape} for one input; the dataset has "
            f"{num_classes} classes, expected (1, {num_classes})"
        )


def load_inputs(
    job,
    dataset: str,
    checkpoint: str,
    *,
    split: str,
    data_dir,
    device,
    trust_checkpoint: bool,
    noise: str,
    k: float,
    sigma,
    sigma0,
    skip: int,
    max: int,
    start: int,
    norm: str | None = None,
) -> Inputs:
    """Device (``job``'s choice), data set, model, the data resized to a model's fixed input
    size (before the noise), the noise for that dimension (certifiable under ``norm`` when
    given), and the selected indices ``start, start + skip, ...`` below ``max``; the model is
    probed on the first selected input."""
    from ..data import select_indices
    from ..models import load_model
    from ..models.pretrained import resize_data
    from ..noises import make_noise

    device = job.resolve_device(device)
    data = load_data(dataset, split, data_dir)
    model, meta = load_model(checkpoint, dataset, device, trust=trust_checkpoint)
    # a model with a fixed input size: the data resized to it, before the noise
    data, resize = resize_data(data, model)
    dim = math.prod(data.input_shape)
    smoothing = make_noise(noise, dim, k=k, sigma=sigma, sigma0=sigma0)
    if norm is not None:
        smoothing.check_certifiable(norm)
    indices = select_indices(len(data), skip, max, start)
    if indices:
        x0 = data[indices[0]][0]
        if x0.numel() != dim:
            raise SmoothCertError(
                f"input {indices[0]} has shape {tuple(x0.shape)} but the "
                f"dataset declares {tuple(data.input_shape)}"
            )
        probe_model(model, x0, data, device)
    return Inputs(device, data, model, meta, resize, smoothing, indices)


def source_config(
    command: str, dataset: str, split: str, data_dir, checkpoint: str, inputs: Inputs, sigma0
) -> dict:
    """The first fields of OUTFILE.config.json, in their order: the command, the version, the
    data, the model (path, SHA-256, training noise) and the noise's parameters."""
    from .. import __version__
    from ..models import file_sha256, train_noise

    return {
        "command": command,
        "smoothcert_version": __version__,
        "dataset": dataset,
        "split": split,
        "data_dir": data_dir,
        "checkpoint": checkpoint,
        "checkpoint_sha256": file_sha256(checkpoint),
        "train_noise": train_noise(inputs.meta),
        **inputs.noise.params(),
        "sigma0": sigma0,
    }


def run_with_progress(
    indices: list[int],
    run: Callable[[list[int], Callable], None],
    desc: str,
    total: int | None = None,
    enabled: bool = True,
) -> None:
    """``run(indices, progress)`` under a tqdm progress bar with ETA on stderr; ``run`` calls
    ``progress(1)`` after each input. ``total`` counts the inputs already done too;
    ``enabled=False`` shows no bar."""
    from tqdm.auto import tqdm

    total = len(indices) if total is None else total
    with tqdm(
        total=total,
        initial=total - len(indices),
        desc=desc,
        unit="input",
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not enabled,
    ) as bar:
        run(indices, bar.update)


def write_rows(
    job,
    name: str,
    outfile,
    header: list[str],
    config: dict,
    indices: list[int],
    check_row,
    compute,
    *,
    progress: bool,
    note: str | None,
) -> RunSummary:
    """Open (resume) OUTFILE through ``job`` with ``header`` and ``config`` (rows read back
    checked by ``check_row``), print ``note`` on stderr as a ``#`` line, run
    ``compute(rows, write, progress)`` on the indices of this shard not done yet, and finish the
    job (rank 0 of a torchrun job merges the part files)."""
    with job.open_results(outfile, header, config, indices, check_row) as results:
        mine = job.shard(indices)
        todo = [i for i in mine if i not in results.done]
        if note is not None:
            print(f"# {note}", file=sys.stderr)
        run_with_progress(
            todo,
            lambda rows, bar: compute(rows, results.write_row, bar),
            desc=job.desc(name),
            total=len(mine),
            enabled=progress,
        )
    status = job.finish()
    return RunSummary(Path(outfile), len(indices), len(todo), note, status)


def write_each(dataset, indices, write, progress, run, row) -> None:
    """For each input ``i`` of ``indices``, in order: ``result = run(i, x)`` on its image ``x``,
    timed, then ``write(row(i, label, result, seconds))`` and ``progress(1)`` (when not None)."""
    for i in indices:
        x, label = dataset[i]
        before = time.time()
        result = run(i, x)
        after = time.time()
        write(row(i, int(label), result, after - before))
        if progress is not None:
            progress(1)


def stop_cell(reason: str) -> str:
    """A stopping reason as a ``stop`` cell: its spaces written as ``_`` (one word, so that
    whitespace-splitting tools read the row)."""
    return reason.replace(" ", "_")


def check_samples_and_stop(cells, col: int, looks, what: str) -> None:
    """The ``samples`` cell ``cells[col]`` of an adaptive row is an integer in ``looks`` (``what``
    names that set in the error) and the ``stop`` cell after it a stopping reason (ValueError)."""
    try:
        samples = int(cells[col])
    except ValueError:
        raise ValueError(f"samples {cells[col]!r} is not an integer") from None
    if samples not in looks:
        raise ValueError(f"samples {samples} is not {what}")
    if not STOP_CELL.fullmatch(cells[col + 1]):
        raise ValueError(f"stop {cells[col + 1]!r} is not a stopping reason")
