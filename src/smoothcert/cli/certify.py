"""``smoothcert certify``: certify the smoothed classifier on a dataset (the reference's
``code/certify.py``, any noise, l2 or l-infinity).

Output: the reference's tab-separated rows ``idx label predict radius correct time`` (radius
with three significant digits in the reference's ``"{:.3}"`` shape but rounded toward zero, never
above the certified radius; time as ``str(datetime.timedelta)``), followed by ``pA_lower`` (full
precision; ``pB_upper`` too with ``--bilateral``) and ``radius_exact`` (the certified radius at
full precision, what ``analyze`` counts). The configuration is written to
``OUTFILE.config.json``; re-running the same command resumes the file. One run at a time per
OUTFILE: a second one is refused (see :func:`smoothcert.results.outfile_lock`).

``--adaptive`` (sequential certification, :meth:`smoothcert.Smooth.certify_adaptive`): ``--N`` is
the per-input budget n_max; sampling stops as soon as the answer is decided, with a time-uniform
lower bound of p_A (valid at whichever look sampling stops). With ``--radii R ...`` the radius
is the largest grid radius whose threshold lies below pA_lower; without, the certificate's radius
at pA_lower, sampling stopping when more samples cannot raise it by more than ``--rtol``. The
columns are, in this order (stable)::

    idx label predict radius correct time pA_lower pA_upper samples stop radius_exact

``pA_upper``: the upper bound of p_A at the stop (used only to stop); ``samples``: forward
passes on this input, the N0 selection samples included; ``stop``: why sampling stopped (the
reason of :func:`smoothcert.sequential.run_certification`, spaces written as ``_``: ``budget``,
``upper_bound_below_1/2``, ``1/2_out_of_reach``, ``largest_grid_radius_certified``,
``next_grid_radius_out_of_reach``, ``radius_converged``). ``OUTFILE.config.json`` records the
mode, the grid, rtol and the bound (its looks and their levels) under ``adaptive``: resuming with
another of them is refused.
"""

from __future__ import annotations

import datetime
import math
import re
import sys
import time

from .. import __version__, distributed, sequential
from ..analysis import EXACT_RADIUS_COLUMN, SAMPLES_COLUMN, format_radius_cell
from ..errors import SmoothCertError
from ..models.pretrained import resize_data
from ..results import format_time, row_fields_checker
from ..smooth import Smooth, derive_seed
from . import common

HEADER = ["idx", "label", "predict", "radius", "correct", "time"]
#: the columns of an ``--adaptive`` run between the reference's and ``radius_exact``
ADAPTIVE_COLUMNS = ["pA_lower", "pA_upper", SAMPLES_COLUMN, "stop"]
#: a ``stop`` cell: a stopping reason with its spaces written as ``_``
STOP_CELL = re.compile(r"[0-9a-z/_]+")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "certify", help="certify a smoothed classifier on a dataset",
        description="Certify the smoothed classifier around every skip-th input of a dataset "
                    "split (CERTIFY of Cohen et al. 2019, any noise and l2 or l-inf radius). "
                    "Writes the reference's tab-separated rows to OUTFILE and the "
                    "configuration to OUTFILE.config.json; re-running resumes.")
    common.add_run_arguments(p)
    common.add_noise_arguments(p)
    p.add_argument("--N0", type=int, default=100, help="samples to select the class (default: 100)")
    p.add_argument("--N", type=int, default=100_000,
                   help="samples to estimate p_A (default: 100000); with --adaptive the most "
                        "samples per input (the budget n_max)")
    p.add_argument("--alpha", type=float, default=0.001,
                   help="failure probability of each input's bound of p_A (default: 0.001)")
    p.add_argument("--bilateral", action="store_true",
                   help="multi-class certificate from bounds of p_A and of the runner-up "
                        "(alpha split in halves)")
    a = p.add_argument_group("sequential certification")
    a.add_argument("--adaptive", action="store_true",
                   help="sample in growing batches and stop as soon as the answer is decided "
                        "(a time-uniform bound of p_A, same guarantee): --N becomes the "
                        "per-input budget; adds the columns pA_upper, samples and stop")
    a.add_argument("--radii", nargs="+", type=float, metavar="R", default=None,
                   help="with --adaptive: the radius grid (e.g. the radii of the table you "
                        "will make; strictly increasing, >= 0): each input gets the largest "
                        "grid radius certified, and stops as soon as that one is decided; "
                        "include 0 to also decide the prediction (certified accuracy at r = 0)")
    a.add_argument("--rtol", type=float, default=None,
                   help="with --adaptive and no --radii: stop when more samples cannot raise "
                        "the radius by more than this fraction (default: "
                        f"{sequential.DEFAULT_RTOL})")
    p.set_defaults(func=run)


def header(bilateral: bool, adaptive: bool = False) -> list[str]:
    if adaptive:
        return HEADER + ADAPTIVE_COLUMNS + [EXACT_RADIUS_COLUMN]
    return HEADER + ["pA_lower"] + (["pB_upper"] if bilateral else []) + [EXACT_RADIUS_COLUMN]


def format_row(idx: int, label: int, prediction: int, radius: float, seconds: float,
               p_a: float, p_b: float | None = None) -> str:
    correct = int(prediction == label)
    elapsed = format_time(seconds)
    # the reference's "{}\t{}\t{}\t{:.3}\t{}\t{}", but the radius rounded toward zero (the
    # reference's round to nearest printed 0.2496 as 0.25), then our full-precision columns
    row = (f"{idx}\t{label}\t{prediction}\t{format_radius_cell(radius)}\t{correct}\t"
           f"{elapsed}\t{p_a!r}")
    if p_b is not None:
        row += f"\t{p_b!r}"
    return row + f"\t{float(radius)!r}"


def format_adaptive_row(idx: int, label: int, result, seconds: float) -> str:
    """The row of an ``--adaptive`` run from a :class:`smoothcert.sequential.AdaptiveCertificate`
    (columns: see the module's documentation)."""
    correct = int(result.prediction == label)
    radius = float(result.radius)
    return (f"{idx}\t{label}\t{result.prediction}\t{format_radius_cell(radius)}\t{correct}\t"
            f"{format_time(seconds)}\t{float(result.pA_lower)!r}\t"
            f"{float(result.pA_upper)!r}\t{int(result.samples)}\t{stop_cell(result.reason)}\t"
            f"{radius!r}")


def stop_cell(reason: str) -> str:
    """A stopping reason as a ``stop`` cell: its spaces written as ``_`` (one word, so that
    whitespace-splitting tools read the row)."""
    return reason.replace(" ", "_")


def _probability(cell, name):
    try:
        p = float(cell)
    except ValueError:
        raise ValueError(f"{name} {cell!r} is not a number") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} {cell!r} is not a probability")
    return p


def _check_radius_cells(cells, radius, p_a, how="the certificate's radius"):
    if cells[3] != format_radius_cell(radius) or cells[-1] != repr(float(radius)):
        raise ValueError(f"radius {cells[3]} ({EXACT_RADIUS_COLUMN} {cells[-1]}) is not "
                         f"{how} {radius!r} at pA_lower {p_a!r}; a damaged file, or one "
                         "written by a version of smoothcert whose certificate differs")


def row_checker(smooth: Smooth, dataset, bilateral: bool):
    """``check(cells)`` for a row read back when resuming: every column parses and agrees with
    the others (see :func:`row_fields_checker`), and the radius is the certificate's at
    the row's pA_lower (and pB_upper); raises ValueError naming the first problem."""
    fields = row_fields_checker(dataset, correct_col=4, time_col=5)

    def check(cells):
        _, prediction = fields(cells)
        p_a = _probability(cells[6], "pA_lower")
        p_b = _probability(cells[7], "pB_upper") if bilateral else None
        abstain = p_a < 0.5 and (p_b is None or p_a <= p_b)
        if abstain != (prediction == Smooth.ABSTAIN):
            raise ValueError(f"predict {prediction} does not match pA_lower {p_a!r}")
        _check_radius_cells(cells, 0.0 if abstain else smooth._radius(p_a, p_b), p_a)

    return check


def adaptive_bound(smooth: Smooth, alpha: float, n_max: int, radii=None):
    """The time-uniform bound :meth:`Smooth.certify_adaptive` uses for this run (the library's
    ``grid_bound`` of the grid thresholds, or its schedule without a grid): its ``looks`` are
    the only estimation sample sizes a row can have, and :func:`bound_description` records it
    in the configuration."""
    thresholds = None if radii is None else sequential.grid_thresholds(
        smooth.certificate, sequential.check_radii(radii))
    make = getattr(sequential, "grid_bound", None)
    if make is not None:
        return make(alpha, n_max, thresholds)
    return sequential.UnionBoundCP(alpha, sequential.look_schedule(n_max))


def bound_description(bound) -> dict:
    """The ``adaptive.bound`` entry of the configuration: the bound's identity (name, alpha,
    looks and the level of each look), marked time-uniform."""
    if hasattr(bound, "describe"):
        desc = dict(bound.describe())
    else:
        desc = {"name": "union-cp", "alpha": bound.alpha, "looks": bound.looks.tolist(),
                "levels": bound.alphas.tolist()}
    return {**desc, "time_uniform": True}


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


def adaptive_row_checker(smooth: Smooth, dataset, n0: int, bound, radii=None):
    """``check(cells)`` for a row of an ``--adaptive`` run read back (resume, part files): the
    columns of :func:`row_fields_checker`; pA_lower <= pA_upper, both probabilities;
    ``samples`` is N0 plus a look of ``bound`` (:func:`adaptive_bound`: the only sample sizes at
    which it holds); ``stop`` a reason; the prediction abstains exactly when pA_lower < 1/2; and the
    radius is, with a grid, the largest grid radius whose threshold lies below pA_lower (0 if
    none), else the certificate's radius at pA_lower. Raises ValueError naming the first
    problem."""
    fields = row_fields_checker(dataset, correct_col=4, time_col=5)
    looks = {n0 + int(n) for n in bound.looks}
    n_max = int(bound.looks[-1])
    grid = None if radii is None else sequential.check_radii(radii)
    thresholds = None if grid is None else sequential.grid_thresholds(smooth.certificate, grid)

    def check(cells):
        _, prediction = fields(cells)
        p_a = _probability(cells[6], "pA_lower")
        p_u = _probability(cells[7], "pA_upper")
        if p_u < p_a:
            raise ValueError(f"pA_upper {p_u!r} is below pA_lower {p_a!r}")
        check_samples_and_stop(cells, 8, looks,
                               f"N0 = {n0} plus a look of the schedule up to N = {n_max}")
        abstain = p_a < 0.5
        if abstain != (prediction == Smooth.ABSTAIN):
            raise ValueError(f"predict {prediction} does not match pA_lower {p_a!r}")
        if abstain:
            radius, how = 0.0, "the abstention's radius"
        elif grid is None:
            radius, how = smooth._radius(p_a), "the certificate's radius"
        else:
            j = sequential.grid_index(thresholds, p_a)
            radius = float(grid[j]) if j >= 0 else 0.0
            how = "the largest grid radius certified,"
        _check_radius_cells(cells, radius, p_a, how)

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


def certify_adaptive_indices(smooth: Smooth, dataset, indices, write, *, n0: int, n_max: int,
                             alpha: float, batch: int, seed: int, radii=None,
                             rtol: float = sequential.DEFAULT_RTOL, progress=None) -> None:
    """:func:`certify_indices` with :meth:`Smooth.certify_adaptive` (budget ``n_max``, grid
    ``radii`` or tolerance ``rtol``): the same seeds, hence the same samples as a fixed-N run
    as far as it goes; one row each (:func:`format_adaptive_row`)."""
    for i in indices:
        x, label = dataset[i]
        before = time.time()
        result = smooth.certify_adaptive(x, n0, n_max, alpha, batch, radii=radii,
                                         generator=derive_seed(seed, i), rtol=rtol)
        after = time.time()
        write(format_adaptive_row(i, int(label), result, after - before))
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
    check_adaptive_args(args)


def check_adaptive_args(args) -> None:
    """The options of sequential certification: --radii and --rtol only with --adaptive, not
    together (a grid decides its radii; rtol is the stopping rule without one), a valid grid,
    rtol > 0; no --bilateral."""
    if not args.adaptive:
        for flag, value in (("--radii", args.radii), ("--rtol", args.rtol)):
            if value is not None:
                raise SmoothCertError(f"{flag} needs --adaptive (it sets the stopping rule of "
                                      "sequential certification)")
        return
    if args.bilateral:
        raise SmoothCertError("--bilateral is not available with --adaptive (the sequential "
                              "certificate bounds p_A only)")
    if args.radii is not None:
        if args.rtol is not None:
            raise SmoothCertError("--rtol applies without --radii: with a grid, sampling stops "
                                  "when the largest certified grid radius is decided")
        try:
            sequential.check_radii(args.radii)
        except SmoothCertError as exc:
            raise SmoothCertError(f"--radii: {exc}") from None
    if args.rtol is not None:
        try:
            sequential.check_rtol(args.rtol)
        except SmoothCertError as exc:
            raise SmoothCertError(f"--rtol: {exc}") from None


def adaptive_config(args, bound) -> dict:
    """The ``adaptive`` entry of OUTFILE.config.json: everything that decides an adaptive
    row besides the shared options (resume refuses a difference): the budget, the grid, rtol
    (None with a grid) and the bound (:func:`bound_description`)."""
    return {
        "n_max": args.N,
        "radii": None if args.radii is None else [float(r) for r in args.radii],
        "rtol": None if args.radii is not None else (
            sequential.DEFAULT_RTOL if args.rtol is None else float(args.rtol)),
        "bound": bound_description(bound),
    }


def adaptive_confidence_note(smooth: Smooth, alpha: float, bound) -> str:
    """One line: with which probability the certificates of an ``--adaptive`` run hold, and
    why the level holds whenever sampling stops (the bound is time-uniform)."""
    cert = smooth.certificate
    table = float(getattr(cert, "failure_prob", 0.0))
    looks = bound.looks
    note = (f"each certified radius ({smooth.norm}, {cert.method} certificate of "
            f"{smooth.noise!r}) holds with probability >= {1 - alpha - table:.6g}: "
            f"alpha = {alpha:g} per input for a time-uniform lower bound of p_A (one-sided "
            f"Clopper-Pearson at each of the {looks.size} looks, from {looks[0]} to "
            f"{looks[-1]} samples, of a schedule fixed before sampling, alpha split over them "
            "by a union bound: valid at whichever look sampling stops)")
    if table:
        note += f" + {table:g} for the Monte Carlo certificate table, shared by all inputs"
    return note


def run(args) -> int:
    check_args(args)
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
    noise.check_certifiable(args.norm)
    indices = select_indices(len(dataset), args.skip, args.max, args.start)
    if indices:
        x0 = dataset[indices[0]][0]
        if x0.numel() != dim:
            raise SmoothCertError(f"input {indices[0]} has shape {tuple(x0.shape)} but the "
                                  f"dataset declares {tuple(dataset.input_shape)}")
        common.probe_model(model, x0, dataset, device)

    smooth = Smooth(model, dataset.num_classes, noise, device=device, norm=args.norm,
                    samples=args.cert_samples, failure_prob=args.cert_failure_prob,
                    progress=not args.no_progress)
    cert = smooth.certificate  # builds (and caches) a Monte Carlo table, with its progress bar
    if args.bilateral and cert.method == "monte-carlo":
        raise SmoothCertError("--bilateral needs bound values V(p, r), which the Monte Carlo "
                              f"certificate of the {noise.name} noise does not give")

    config = {
        "command": common.format_command("certify", [args.dataset, args.checkpoint, args.outfile], {
            "--noise": args.noise, "--k": args.k, "--sigma": args.sigma, "--sigma0": args.sigma0,
            "--norm": args.norm, "--N0": args.N0, "--N": args.N, "--alpha": args.alpha,
            "--batch": args.batch, "--skip": args.skip, "--start": args.start or None,
            "--max": args.max, "--split": args.split,
            "--data-dir": args.data_dir, "--device": args.device, "--seed": args.seed,
            "--bilateral": args.bilateral, "--cert-samples": args.cert_samples,
            "--cert-failure-prob": args.cert_failure_prob,
            "--trust-checkpoint": args.trust_checkpoint, "--adaptive": args.adaptive,
            "--radii": args.radii, "--rtol": args.rtol}),
        "smoothcert_version": __version__,
        "dataset": args.dataset, "split": args.split, "data_dir": args.data_dir,
        "checkpoint": args.checkpoint, "checkpoint_sha256": file_sha256(args.checkpoint),
        "train_noise": train_noise(meta),
        **noise.params(), "sigma0": args.sigma0, "norm": args.norm,
        "N0": args.N0, "N": args.N, "alpha": args.alpha, "bilateral": args.bilateral,
        "batch": args.batch, "skip": args.skip, "start": args.start, "max": args.max,
        "seed": args.seed,
        "device": str(device), "certificate": cert.describe(),
        "failure_prob": smooth.failure_prob(args.alpha),
        "confidence": smooth.confidence_note(args.alpha, args.bilateral),
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if resize is not None:  # radii are in the resized pixel space
        config["resize"] = resize
    if args.adaptive:  # fixed-N files keep their configuration as before (they resume)
        bound = adaptive_bound(smooth, args.alpha, args.N, args.radii)
        config["adaptive"] = adaptive_config(args, bound)
        config["confidence"] = adaptive_confidence_note(smooth, args.alpha, bound)
        check = adaptive_row_checker(smooth, dataset, args.N0, bound, args.radii)
    else:
        check = row_checker(smooth, dataset, args.bilateral)
    with job.open_results(args.outfile, header(args.bilateral, args.adaptive), config, indices,
                          check) as results:
        todo = [i for i in job.shard(indices) if i not in results.done]
        print(f"# {config['confidence']}", file=sys.stderr)

        def work(rows, progress):
            if args.adaptive:
                certify_adaptive_indices(
                    smooth, dataset, rows, results.write_row, n0=args.N0, n_max=args.N,
                    alpha=args.alpha, batch=args.batch, seed=args.seed, radii=args.radii,
                    rtol=config["adaptive"]["rtol"] or sequential.DEFAULT_RTOL,
                    progress=progress)
                return
            certify_indices(smooth, dataset, rows, results.write_row, n0=args.N0, n=args.N,
                            alpha=args.alpha, batch=args.batch, seed=args.seed,
                            bilateral=args.bilateral, progress=progress)

        common.run_with_progress(todo, work, desc=job.desc("certify"),
                                 total=len(job.shard(indices)), enabled=not args.no_progress)
    return job.finish()
