"""``smoothcert predict``: evaluate the smoothed classifier's prediction on a dataset (the
reference's ``code/predict.py``, any noise).

Output: the reference's tab-separated rows ``idx label predict correct time`` (predict is -1 on
abstention). The configuration is written to ``OUTFILE.config.json``; re-running the same
command resumes the file; a second run on the same OUTFILE while one runs is refused.
"""

from __future__ import annotations

import datetime
import math
import time

from .. import __version__, distributed
from ..smooth import Smooth, derive_seed
from . import common

HEADER = ["idx", "label", "predict", "correct", "time"]


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
                   help="number of noise samples (default: 100000)")
    p.add_argument("--alpha", type=float, default=0.001,
                   help="failure probability of the test (default: 0.001)")
    p.set_defaults(func=run)


def format_row(idx: int, label: int, prediction: int, seconds: float) -> str:
    # the reference's "{}\t{}\t{}\t{}\t{}"
    return f"{idx}\t{label}\t{prediction}\t{int(prediction == label)}\t" \
           f"{common.format_time(seconds)}"


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


def run(args) -> int:
    common.check_run_args(args)
    common.check_samples("--N", args.N)
    common.check_alpha(args.alpha)
    job = distributed.job_from_args(args)  # a torchrun shard, or this one process
    with job.lock(args.outfile):  # one run per OUTFILE: a second one is refused
        return _run(args, job)


def _run(args, job) -> int:
    device = job.resolve_device(args.device)

    dataset = common.load_data(args)
    dim = math.prod(dataset.input_shape)
    noise = common.noise_from_args(args, dim)
    model, _ = common.load_model(args.checkpoint, args.dataset, device,
                                 trust=args.trust_checkpoint)
    indices = common.select_indices(len(dataset), args.skip, args.max)
    if indices:
        common.probe_model(model, dataset[indices[0]][0], dataset, device)
    smooth = Smooth(model, dataset.num_classes, noise, device=device)

    config = {
        "command": common.format_command("predict", [args.dataset, args.checkpoint, args.outfile], {
            "--noise": args.noise, "--k": args.k, "--sigma": args.sigma, "--sigma0": args.sigma0,
            "--N": args.N, "--alpha": args.alpha, "--batch": args.batch, "--skip": args.skip,
            "--max": args.max, "--split": args.split, "--data-dir": args.data_dir,
            "--device": args.device, "--seed": args.seed,
            "--trust-checkpoint": args.trust_checkpoint}),
        "smoothcert_version": __version__,
        "dataset": args.dataset, "split": args.split, "data_dir": args.data_dir,
        "checkpoint": args.checkpoint, "checkpoint_sha256": common.file_sha256(args.checkpoint),
        **noise.params(), "sigma0": args.sigma0,
        "N": args.N, "alpha": args.alpha,
        "batch": args.batch, "skip": args.skip, "max": args.max, "seed": args.seed,
        "device": str(device),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    with job.open_results(args.outfile, HEADER, config, indices,
                          common.row_fields_checker(dataset, correct_col=3, time_col=4)
                          ) as results:
        todo = [i for i in job.shard(indices) if i not in results.done]

        def work(rows, progress):
            predict_indices(smooth, dataset, rows, results.write_row, n=args.N, alpha=args.alpha,
                            batch=args.batch, seed=args.seed, progress=progress)

        common.run_with_progress(todo, work, desc=job.desc("predict"),
                                 total=len(job.shard(indices)))
    return job.finish()
