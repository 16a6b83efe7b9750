"""``smoothcert certify``: certify the smoothed classifier on a dataset (the reference's
``code/certify.py``, any noise, l2 or l-infinity).

Output: the reference's tab-separated rows ``idx label predict radius correct time`` (radius
with three significant digits in the reference's ``"{:.3}"`` shape but rounded toward zero, never
above the certified radius; time as ``str(datetime.timedelta)``), followed by ``pA_lower`` (full
precision; ``pB_upper`` too with ``--bilateral``) and ``radius_exact`` (the certified radius at
full precision, what ``analyze`` counts). The configuration is written to
``OUTFILE.config.json``; re-running the same command resumes the file. One run at a time per
OUTFILE: a second one is refused (see :func:`common.outfile_lock`).
"""

from __future__ import annotations

import datetime
import math
import sys
import time

from .. import __version__, distributed
from ..analysis import EXACT_RADIUS_COLUMN, format_radius_cell
from ..errors import SmoothCertError
from ..smooth import Smooth, derive_seed
from . import common

HEADER = ["idx", "label", "predict", "radius", "correct", "time"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "certify", help="certify a smoothed classifier on a dataset",
        description="Certify the smoothed classifier around every skip-th input of a dataset "
                    "split (CERTIFY of Cohen et al. 2019, any noise and l2 or l-inf radius). "
                    "Writes the reference's tab-separated rows to OUTFILE and the "
                    "configuration to OUTFILE.config.json; re-running resumes.")
    common.add_run_arguments(p)
    common.add_noise_arguments(p)
    p.add_argument("--N0", type=int, default=100, help="samples to select the class (100)")
    p.add_argument("--N", type=int, default=100_000,
                   help="samples to estimate p_A (default: 100000)")
    p.add_argument("--alpha", type=float, default=0.001,
                   help="failure probability of each input's bound of p_A (default: 0.001)")
    p.add_argument("--bilateral", action="store_true",
                   help="multi-class certificate from bounds of p_A and of the runner-up "
                        "(alpha split in halves)")
    p.set_defaults(func=run)


def header(bilateral: bool) -> list[str]:
    return HEADER + ["pA_lower"] + (["pB_upper"] if bilateral else []) + [EXACT_RADIUS_COLUMN]


def format_row(idx: int, label: int, prediction: int, radius: float, seconds: float,
               p_a: float, p_b: float | None = None) -> str:
    correct = int(prediction == label)
    elapsed = common.format_time(seconds)
    # the reference's "{}\t{}\t{}\t{:.3}\t{}\t{}", but the radius rounded toward zero (the
    # reference's round to nearest printed 0.2496 as 0.25), then our full-precision columns
    row = (f"{idx}\t{label}\t{prediction}\t{format_radius_cell(radius)}\t{correct}\t"
           f"{elapsed}\t{p_a!r}")
    if p_b is not None:
        row += f"\t{p_b!r}"
    return row + f"\t{float(radius)!r}"


def row_checker(smooth: Smooth, dataset, bilateral: bool):
    """``check(cells)`` for a row read back when resuming: every column parses and agrees with
    the others (see :func:`common.row_fields_checker`), and the radius is the certificate's at
    the row's pA_lower (and pB_upper); raises ValueError naming the first problem."""
    fields = common.row_fields_checker(dataset, correct_col=4, time_col=5)

    def probability(cell, name):
        try:
            p = float(cell)
        except ValueError:
            raise ValueError(f"{name} {cell!r} is not a number") from None
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} {cell!r} is not a probability")
        return p

    def check(cells):
        _, prediction = fields(cells)
        p_a = probability(cells[6], "pA_lower")
        p_b = probability(cells[7], "pB_upper") if bilateral else None
        abstain = p_a < 0.5 and (p_b is None or p_a <= p_b)
        if abstain != (prediction == Smooth.ABSTAIN):
            raise ValueError(f"predict {prediction} does not match pA_lower {p_a!r}")
        radius = 0.0 if abstain else smooth._radius(p_a, p_b)
        if cells[3] != format_radius_cell(radius) or cells[-1] != repr(float(radius)):
            raise ValueError(f"radius {cells[3]} ({EXACT_RADIUS_COLUMN} {cells[-1]}) is not "
                             f"the certificate's {radius!r} at pA_lower {p_a!r}; a damaged "
                             "file, or one written by a version of smoothcert whose "
                             "certificate differs")

    return check


def certify_indices(smooth: Smooth, dataset, indices, write, *, n0: int, n: int, alpha: float,
                    batch: int, seed: int, bilateral: bool = False, progress=None) -> None:
    """Certify the inputs ``indices`` of ``dataset`` and ``write`` one row each, in order.

    The noise of input ``idx`` is seeded from ``derive_seed(seed, idx)``, so a row does not
    depend on which other indices are run, in which order, or by which process (sharding)."""
    for i in indices:
        x, label = dataset[i]
        before = time.time()
        prediction, radius, p_a, p_b = smooth.certify_detailed(
            x, n0, n, alpha, batch, generator=derive_seed(seed, i), bilateral=bilateral)
        after = time.time()
        write(format_row(i, int(label), prediction, radius, after - before, p_a, p_b))
        if progress is not None:
            progress(1)


def check_args(args) -> None:
    """Every check of the options, before anything is loaded, locked or written."""
    common.check_run_args(args)
    common.check_samples("--N0", args.N0)
    common.check_samples("--N", args.N)
    common.check_alpha(args.alpha)
    common.check_samples("--cert-samples", args.cert_samples, 100)
    common.check_alpha(args.cert_failure_prob, "--cert-failure-prob")


def run(args) -> int:
    check_args(args)
    job = distributed.job_from_args(args)  # a torchrun shard, or this one process
    with job.lock(args.outfile):  # one run per OUTFILE: a second one is refused
        return _run(args, job)


def _run(args, job) -> int:
    device = job.resolve_device(args.device)

    dataset = common.load_data(args)
    dim = math.prod(dataset.input_shape)
    noise = common.noise_from_args(args, dim)
    noise.check_certifiable(args.norm)
    model, _ = common.load_model(args.checkpoint, args.dataset, device,
                                 trust=args.trust_checkpoint)
    indices = common.select_indices(len(dataset), args.skip, args.max)
    if indices:
        x0 = dataset[indices[0]][0]
        if x0.numel() != dim:
            raise SmoothCertError(f"input {indices[0]} has shape {tuple(x0.shape)} but the "
                                  f"dataset declares {tuple(dataset.input_shape)}")
        common.probe_model(model, x0, dataset, device)

    smooth = Smooth(model, dataset.num_classes, noise, device=device, norm=args.norm,
                    samples=args.cert_samples, failure_prob=args.cert_failure_prob,
                    progress=True)
    cert = smooth.certificate  # builds (and caches) a Monte Carlo table, with its progress bar
    if args.bilateral and cert.method == "monte-carlo":
        raise SmoothCertError("--bilateral needs bound values V(p, r), which the Monte Carlo "
                              f"certificate of the {noise.name} noise does not give")

    config = {
        "command": common.format_command("certify", [args.dataset, args.checkpoint, args.outfile], {
            "--noise": args.noise, "--k": args.k, "--sigma": args.sigma, "--sigma0": args.sigma0,
            "--norm": args.norm, "--N0": args.N0, "--N": args.N, "--alpha": args.alpha,
            "--batch": args.batch, "--skip": args.skip, "--max": args.max, "--split": args.split,
            "--data-dir": args.data_dir, "--device": args.device, "--seed": args.seed,
            "--bilateral": args.bilateral, "--cert-samples": args.cert_samples,
            "--cert-failure-prob": args.cert_failure_prob,
            "--trust-checkpoint": args.trust_checkpoint}),
        "smoothcert_version": __version__,
        "dataset": args.dataset, "split": args.split, "data_dir": args.data_dir,
        "checkpoint": args.checkpoint, "checkpoint_sha256": common.file_sha256(args.checkpoint),
        **noise.params(), "sigma0": args.sigma0, "norm": args.norm,
        "N0": args.N0, "N": args.N, "alpha": args.alpha, "bilateral": args.bilateral,
        "batch": args.batch, "skip": args.skip, "max": args.max, "seed": args.seed,
        "device": str(device), "certificate": cert.describe(),
        "failure_prob": smooth.failure_prob(args.alpha),
        "confidence": smooth.confidence_note(args.alpha, args.bilateral),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    with job.open_results(args.outfile, header(args.bilateral), config, indices,
                          row_checker(smooth, dataset, args.bilateral)) as results:
        todo = [i for i in job.shard(indices) if i not in results.done]
        print(f"# {smooth.confidence_note(args.alpha, args.bilateral)}", file=sys.stderr)

        def work(rows, progress):
            certify_indices(smooth, dataset, rows, results.write_row, n0=args.N0, n=args.N,
                            alpha=args.alpha, batch=args.batch, seed=args.seed,
                            bilateral=args.bilateral, progress=progress)

        common.run_with_progress(todo, work, desc=job.desc("certify"),
                                 total=len(job.shard(indices)))
    return job.finish()
