"""``smoothcert predict``: evaluate the smoothed classifier's prediction on a dataset (the
reference's ``code/predict.py``, any noise).

Output: the reference's tab-separated rows ``idx label predict correct time`` (predict is -1 on
abstention). The configuration is written to ``OUTFILE.config.json``; re-running the same
command resumes the file; a second run on the same OUTFILE while one runs is refused.

``--adaptive`` (sequential PREDICT, :meth:`smoothcert.Smooth.predict_adaptive`): ``--N`` is the
per-input budget; the class is returned as soon as a time-uniform test decides it (same
guarantee: with probability >= 1 - alpha the class is g(x)). The columns are, in this order::

    idx label predict correct time samples stop

``samples``: forward passes on this input; ``stop``: why sampling stopped (``decided``,
``budget``, ``decision_out_of_reach``: the reason with its spaces written as ``_``).
``OUTFILE.config.json`` records the mode and the look schedule under ``adaptive``.
"""

from __future__ import annotations

import datetime
import math
import sys
import time

from .. import __version__, distributed, sequential
from ..analysis import SAMPLES_COLUMN
from ..models.pretrained import resize_data
from ..results import format_time, row_fields_checker
from ..smooth import Smooth, derive_seed
from . import common
from .certify import check_samples_and_stop, stop_cell

HEADER = ["idx", "label", "predict", "correct", "time"]
#: the columns of an ``--adaptive`` run after the reference's
ADAPTIVE_COLUMNS = [SAMPLES_COLUMN, "stop"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="smoothed predictions on a dataset",
        description="Run PREDICT of Cohen et al. 2019 (the smoothed classifier's prediction, or "
                    "-1 to abstain) on every skip-th input of a dataset split. Writes the "
                    "reference's tab-separated rows to OUTFILE and the configuration to "
                    "OUTFILE.config.json; re-running resumes.")
    common.add_run_arguments(p)
    common.add_noise_arguments(p, certificate=False)
    p.add_argument("--N", type=int, default=100_000,
                   help="number of noise samples (default: 100000); with --adaptive the most "
                        "samples per input (the budget)")
    p.add_argument("--alpha", type=float, default=0.001,
                   help="failure probability of the test (default: 0.001)")
    p.add_argument("--adaptive", action="store_true",
                   help="sample in growing batches and return the class as soon as a "
                        "time-uniform test decides it (same guarantee): --N becomes the "
                        "per-input budget; adds the columns samples and stop")
    p.set_defaults(func=run)


def format_row(idx: int, label: int, prediction: int, seconds: float) -> str:
    # the reference's "{}\t{}\t{}\t{}\t{}"
    return f"{idx}\t{label}\t{prediction}\t{int(prediction == label)}\t" \
           f"{format_time(seconds)}"


def predict_indices(smooth: Smooth, dataset, indices, write, *, n: int, alpha: float,
                    batch: int, seed: int, progress=None) -> None:
    """PREDICT on the inputs ``indices`` of ``dataset``, writing one row each, in order; the
    noise of input ``idx`` is seeded from ``derive_seed(seed, idx)`` (independent of sharding)."""
    for i in indices:
        x, label = dataset[i]
        before = time.time()
        prediction = smooth.predict(x, n, alpha, batch, generator=derive_seed(seed, i))
        after = time.time()
        write(format_row(i, int(label), prediction, after - before))
        if progress is not None:
            progress(1)


def predict_adaptive_indices(smooth: Smooth, dataset, indices, write, *, n_max: int,
                             alpha: float, batch: int, seed: int, progress=None) -> None:
    """:func:`predict_indices` with :meth:`Smooth.predict_adaptive` (budget ``n_max``; the
    same seeds): one row each, the reference's columns then ``samples`` and ``stop``."""
    for i in indices:
        x, label = dataset[i]
        before = time.time()
        result = smooth.predict_adaptive(x, n_max, alpha, batch, generator=derive_seed(seed, i))
        after = time.time()
        write(format_row(i, int(label), result.prediction, after - before)
              + f"\t{int(result.samples)}\t{stop_cell(result.reason)}")
        if progress is not None:
            progress(1)


def adaptive_row_checker(dataset, n_max: int):
    """``check(cells)`` for a row of an ``--adaptive`` run read back: the columns of
    :func:`row_fields_checker`, ``samples`` a look of the schedule up to ``n_max`` and
    ``stop`` a reason (ValueError naming the first problem)."""
    fields = row_fields_checker(dataset, correct_col=3, time_col=4)
    looks = {int(n) for n in sequential.look_schedule(n_max)}

    def check(cells):
        fields(cells)
        check_samples_and_stop(cells, 5, looks, f"a look of the schedule up to N = {n_max}")

    return check


def adaptive_confidence_note(alpha: float, n_max: int, num_classes: int) -> str:
    """One line: with which probability the predictions of an ``--adaptive`` run are g(x), and
    why the level holds whenever sampling stops."""
    looks = sequential.look_schedule(n_max)
    return (f"each prediction that is not an abstention is g(x) with probability >= "
            f"{1 - alpha:.6g}: alpha = {alpha:g} per input, split by a union bound over the "
            f"{looks.size} looks {looks[0]}, x{sequential.DEFAULT_GROWTH:g}, ..., {n_max} of "
            f"the schedule and the {max(1, num_classes - 1)} classes tested against the "
            "leader (one-sided Clopper-Pearson): time-uniform, valid at whichever look "
            "sampling stops")


def run(args) -> int:
    common.check_run_args(args)
    common.check_samples("--N", args.N)
    common.check_alpha(args.alpha)
    job = distributed.job_from_args(args)  # a torchrun shard, or this one process
    with job.lock(args.outfile):  # one run per OUTFILE: a second one is refused
        return _run(args, job)


def _run(args, job) -> int:
    from ..data import select_indices
    from ..models import file_sha256, load_model, train_noise

    device = job.resolve_device(args.device)

    dataset = common.load_data(args)
    model, meta = load_model(args.checkpoint, args.dataset, device, trust=args.trust_checkpoint)
    # a model with a fixed input size: the data resized to it, before the noise
    dataset, resize = resize_data(dataset, model)
    dim = math.prod(dataset.input_shape)
    noise = common.noise_from_args(args, dim)
    indices = select_indices(len(dataset), args.skip, args.max, args.start)
    if indices:
        common.probe_model(model, dataset[indices[0]][0], dataset, device)
    smooth = Smooth(model, dataset.num_classes, noise, device=device)

    config = {
        "command": common.format_command("predict", [args.dataset, args.checkpoint, args.outfile], {
            "--noise": args.noise, "--k": args.k, "--sigma": args.sigma, "--sigma0": args.sigma0,
            "--N": args.N, "--alpha": args.alpha, "--batch": args.batch, "--skip": args.skip,
            "--start": args.start or None, "--max": args.max, "--split": args.split,
            "--data-dir": args.data_dir, "--device": args.device, "--seed": args.seed,
            "--trust-checkpoint": args.trust_checkpoint, "--adaptive": args.adaptive}),
        "smoothcert_version": __version__,
        "dataset": args.dataset, "split": args.split, "data_dir": args.data_dir,
        "checkpoint": args.checkpoint, "checkpoint_sha256": file_sha256(args.checkpoint),
        "train_noise": train_noise(meta),
        **noise.params(), "sigma0": args.sigma0,
        "N": args.N, "alpha": args.alpha,
        "batch": args.batch, "skip": args.skip, "start": args.start, "max": args.max,
        "seed": args.seed,
        "device": str(device),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if resize is not None:  # the noise is in the resized pixel space
        config["resize"] = resize
    header, check = HEADER, row_fields_checker(dataset, correct_col=3, time_col=4)
    if args.adaptive:  # fixed-N files keep their configuration as before (they resume)
        looks = sequential.look_schedule(args.N)
        config["adaptive"] = {
            "n_max": args.N,
            "test": "pairwise one-sided Clopper-Pearson, union bound over looks and classes "
                    "(smoothcert.Smooth.predict_adaptive)",
            "first_look": sequential.DEFAULT_FIRST_LOOK, "growth": sequential.DEFAULT_GROWTH,
            "final_share": sequential.DEFAULT_FINAL_SHARE, "looks": int(looks.size)}
        config["confidence"] = adaptive_confidence_note(args.alpha, args.N,
                                                        int(dataset.num_classes))
        header, check = HEADER + ADAPTIVE_COLUMNS, adaptive_row_checker(dataset, args.N)
    with job.open_results(args.outfile, header, config, indices, check) as results:
        todo = [i for i in job.shard(indices) if i not in results.done]
        if args.adaptive:
            print(f"# {config['confidence']}", file=sys.stderr)

        def work(rows, progress):
            if args.adaptive:
                predict_adaptive_indices(smooth, dataset, rows, results.write_row, n_max=args.N,
                                         alpha=args.alpha, batch=args.batch, seed=args.seed,
                                         progress=progress)
                return
            predict_indices(smooth, dataset, rows, results.write_row, n=args.N, alpha=args.alpha,
                            batch=args.batch, seed=args.seed, progress=progress)

        common.run_with_progress(todo, work, desc=job.desc("predict"),
                                 total=len(job.shard(indices)), enabled=not args.no_progress)
    return job.finish()
