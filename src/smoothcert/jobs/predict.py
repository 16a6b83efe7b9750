"""Smoothed predictions on a data set into a results file: :func:`predict_file`, the job of
``smoothcert predict`` (the reference's ``code/predict.py``, any noise).

Output: the reference's tab-separated rows ``idx label predict correct time`` (predict is -1 on
abstention). The configuration is written to ``OUTFILE.config.json``; running the same job again
resumes the file; a second run on the same OUTFILE while one runs is refused.

``adaptive`` (sequential PREDICT, :meth:`smoothcert.Smooth.predict_adaptive`): ``n`` is the
per-input budget; the class is returned as soon as a time-uniform test decides it (same
guarantee: with probability >= 1 - alpha the class is g(x)). The columns are, in this order::

    idx label predict correct time samples stop

``samples``: forward passes on this input; ``stop``: why sampling stopped (``decided``,
``budget``, ``decision_out_of_reach``: the reason with its spaces written as ``_``).
``OUTFILE.config.json`` records the mode and the look schedule under ``adaptive``.
"""

from __future__ import annotations

import datetime

from .. import distributed, sequential
from ..analysis import SAMPLES_COLUMN
from ..results import format_time, row_fields_checker
from ..smooth import Smooth, derive_seed
from .checks import check_predict_args
from .common import (
    RunSummary,
    check_samples_and_stop,
    format_command,
    load_inputs,
    source_config,
    stop_cell,
    write_each,
    write_rows,
)

HEADER = ["idx", "label", "predict", "correct", "time"]
#: the columns of an ``adaptive`` run after the reference's
ADAPTIVE_COLUMNS = [SAMPLES_COLUMN, "stop"]


def predict_file(
    dataset: str,
    checkpoint,
    outfile,
    *,
    sigma: float | None = None,
    sigma0: float | None = None,
    noise: str = "gaussian",
    k: float = 0.0,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    skip: int = 1,
    start: int = 0,
    max: int = -1,
    split: str = "test",
    data_dir=None,
    device=None,
    seed: int = 0,
    trust_checkpoint: bool = False,
    adaptive: bool = False,
    distributed_run: bool = False,
    progress: bool = True,
) -> RunSummary:
    """PREDICT on the inputs ``start, start + skip, ...`` (below ``max``; -1: all) of
    ``dataset``'s ``split`` with the smoothed ``checkpoint`` into OUTFILE (see the module's
    documentation), resuming it; exactly what ``smoothcert predict DATASET CHECKPOINT OUTFILE``
    does with the options of the same names (``n``: ``--N``; ``distributed_run``:
    ``--distributed``; ``progress=False``: ``--no-progress``), whose command line the
    configuration records. Sharded over a torchrun job like
    :func:`~smoothcert.jobs.certify_file`; returns a :class:`~smoothcert.jobs.common.RunSummary`.
    A bad argument is a one-line :class:`SmoothCertError` naming its option, before anything is
    loaded or written (:func:`~smoothcert.jobs.checks.check_predict_args`).
    """
    check_predict_args(
        outfile, n=n, alpha=alpha, batch=batch, skip=skip, start=start, max=max, seed=seed
    )
    k, alpha = float(k), float(alpha)
    sigma = None if sigma is None else float(sigma)
    sigma0 = None if sigma0 is None else float(sigma0)
    checkpoint, outfile = str(checkpoint), str(outfile)
    data_dir = None if data_dir is None else str(data_dir)
    device = None if device is None else str(device)
    command = format_command(
        "predict",
        [dataset, checkpoint, outfile],
        {
            "--noise": noise,
            "--k": k,
            "--sigma": sigma,
            "--sigma0": sigma0,
            "--N": n,
            "--alpha": alpha,
            "--batch": batch,
            "--skip": skip,
            "--start": start or None,
            "--max": max,
            "--split": split,
            "--data-dir": data_dir,
            "--device": device,
            "--seed": seed,
            "--trust-checkpoint": trust_checkpoint,
            "--adaptive": adaptive,
        },
    )
    job = distributed.job_for(outfile, distributed=distributed_run)
    with job.lock(outfile):  # one run per OUTFILE: a second one is refused
        inputs = load_inputs(
            job,
            dataset,
            checkpoint,
            split=split,
            data_dir=data_dir,
            device=device,
            trust_checkpoint=trust_checkpoint,
            noise=noise,
            k=k,
            sigma=sigma,
            sigma0=sigma0,
            skip=skip,
            max=max,
            start=start,
        )
        smooth = Smooth(
            inputs.model, inputs.dataset.num_classes, inputs.noise, device=inputs.device
        )
        config = {
            **source_config(command, dataset, split, data_dir, checkpoint, inputs, sigma0),
            "N": n,
            "alpha": alpha,
            "batch": batch,
            "skip": skip,
            "start": start,
            "max": max,
            "seed": seed,
            "device": str(inputs.device),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        if inputs.resize is not None:  # the noise is in the resized pixel space
            config["resize"] = inputs.resize
        if adaptive:  # fixed-N files keep their configuration as before (they resume)
            config["adaptive"] = adaptive_config(n)
            config["confidence"] = adaptive_confidence_note(
                alpha, n, int(inputs.dataset.num_classes)
            )
            header, check = HEADER + ADAPTIVE_COLUMNS, adaptive_row_checker(inputs.dataset, n)

            def compute(rows, write, bar):
                predict_adaptive_indices(
                    smooth,
                    inputs.dataset,
                    rows,
                    write,
                    n_max=n,
                    alpha=alpha,
                    batch=batch,
                    seed=seed,
                    progress=bar,
                )
        else:
            header, check = HEADER, row_fields_checker(inputs.dataset, correct_col=3, time_col=4)

            def compute(rows, write, bar):
                predict_indices(
                    smooth,
                    inputs.dataset,
                    rows,
                    write,
                    n=n,
                    alpha=alpha,
                    batch=batch,
                    seed=seed,
                    progress=bar,
                )

        return write_rows(
            job,
            "predict",
            outfile,
            header,
            config,
            inputs.indices,
            check,
            compute,
            progress=progress,
            note=config.get("confidence"),
        )


def format_row(idx: int, label: int, prediction: int, seconds: float) -> str:
    # the reference's "{}\t{}\t{}\t{}\t{}"
    return f"{idx}\t{label}\t{prediction}\t{int(prediction == label)}\t{format_time(seconds)}"


def predict_indices(
    smooth: Smooth,
    dataset,
    indices,
    write,
    *,
    n: int,
    alpha: float,
    batch: int,
    seed: int,
    progress=None,
) -> None:
    """PREDICT on the inputs ``indices`` of ``dataset``, writing one row each, in order; the
    noise of input ``idx`` is seeded from ``derive_seed(seed, idx)`` (independent of sharding)."""

    def run(i, x):
        return smooth.predict(x, n, alpha, batch, generator=derive_seed(seed, i))

    write_each(dataset, indices, write, progress, run, format_row)


def predict_adaptive_indices(
    smooth: Smooth,
    dataset,
    indices,
    write,
    *,
    n_max: int,
    alpha: float,
    batch: int,
    seed: int,
    progress=None,
) -> None:
    """:func:`predict_indices` with :meth:`Smooth.predict_adaptive` (budget ``n_max``; the
    same seeds): one row each, the reference's columns then ``samples`` and ``stop``."""

    def run(i, x):
        return smooth.predict_adaptive(x, n_max, alpha, batch, generator=derive_seed(seed, i))

    def row(i, label, result, seconds):
        return (
            format_row(i, label, result.prediction, seconds)
            + f"\t{int(result.samples)}\t{stop_cell(result.reason)}"
        )

    write_each(dataset, indices, write, progress, run, row)


def adaptive_row_checker(dataset, n_max: int):
    """``check(cells)`` for a row of an ``adaptive`` run read back: the columns of
    :func:`row_fields_checker`, ``samples`` a look of the schedule up to ``n_max`` and
    ``stop`` a reason (ValueError naming the first problem)."""
    fields = row_fields_checker(dataset, correct_col=3, time_col=4)
    looks = {int(n) for n in sequential.look_schedule(n_max)}

    def check(cells):
        fields(cells)
        check_samples_and_stop(cells, 5, looks, f"a look of the schedule up to N = {n_max}")

    return check


def adaptive_config(n_max: int) -> dict:
    """The ``adaptive`` entry of OUTFILE.config.json: the budget and the look schedule of the
    sequential test."""
    looks = sequential.look_schedule(n_max)
    return {
        "n_max": n_max,
        "test": "pairwise one-sided Clopper-Pearson, union bound over looks and classes "
        "(smoothcert.Smooth.predict_adaptive)",
        "first_look": sequential.DEFAULT_FIRST_LOOK,
        "growth": sequential.DEFAULT_GROWTH,
        "final_share": sequential.DEFAULT_FINAL_SHARE,
        "looks": int(looks.size),
    }


def adaptive_confidence_note(alpha: float, n_max: int, num_classes: int) -> str:
    """One line: with which probability the predictions of an ``adaptive`` run are g(x), and
    why the level holds whenever sampling stops."""
    looks = sequential.look_schedule(n_max)
    return (
        f"each prediction that is not an abstention is g(x) with probability >= "
        f"{1 - alpha:.6g}: alpha = {alpha:g} per input, split by a union bound over the "
        f"{looks.size} looks {looks[0]}, x{sequential.DEFAULT_GROWTH:g}, ..., {n_max} of "
        f"the schedule and the {max(1, num_classes - 1)} classes tested against the "
        "leader (one-sided Clopper-Pearson): time-uniform, valid at whichever look "
        "sampling stops"
    )
