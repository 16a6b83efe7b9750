"""Certify a data set into a results file: :func:`certify_file`, the job of ``smoothcert
certify`` (the reference's ``code/certify.py``, any noise, l2 or l-infinity) and of the demo.

Output: the reference's tab-separated rows ``idx label predict radius correct time`` (radius
with three significant digits in the reference's ``"{:.3}"`` shape but rounded toward zero, never
above the certified radius; time as ``str(datetime.timedelta)``), followed by ``pA_lower`` (full
precision; ``pB_upper`` too with ``bilateral``) and ``radius_exact`` (the certified radius at
full precision, what ``analyze`` counts). The configuration is written to
``OUTFILE.config.json``; running the same job again resumes the file. One run at a time per
OUTFILE: a second one is refused (see :func:`smoothcert.results.outfile_lock`).

``adaptive`` (sequential certification, :meth:`smoothcert.Smooth.certify_adaptive`): ``n`` is
the per-input budget n_max; sampling stops as soon as the answer is decided, with a time-uniform
lower bound of p_A (valid at whichever look sampling stops). With a grid ``radii`` the radius
is the largest grid radius whose threshold lies below pA_lower; without, the certificate's radius
at pA_lower, sampling stopping when more samples cannot raise it by more than ``rtol``. The
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

from .. import distributed, sequential
from ..analysis import EXACT_RADIUS_COLUMN, SAMPLES_COLUMN, format_radius_cell
from ..certificates import DEFAULT_FAILURE_PROB, DEFAULT_SAMPLES
from ..errors import SmoothCertError
from ..results import format_time, row_fields_checker
from ..smooth import Smooth, derive_seed
from .checks import check_certify_args
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

HEADER = ["idx", "label", "predict", "radius", "correct", "time"]
#: the columns of an ``adaptive`` run between the reference's and ``radius_exact``
ADAPTIVE_COLUMNS = ["pA_lower", "pA_upper", SAMPLES_COLUMN, "stop"]


def certify_file(
    dataset: str,
    checkpoint,
    outfile,
    *,
    sigma: float | None = None,
    sigma0: float | None = None,
    noise: str = "gaussian",
    k: float = 0.0,
    norm: str = "l2",
    n0: int = 100,
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
    bilateral: bool = False,
    cert_samples: int = DEFAULT_SAMPLES,
    cert_failure_prob: float = DEFAULT_FAILURE_PROB,
    trust_checkpoint: bool = False,
    adaptive: bool = False,
    radii=None,
    rtol: float | None = None,
    distributed_run: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Certify the inputs ``start, start + skip, ...`` (below ``max``; -1: all) of ``dataset``'s
    ``split`` with the smoothed ``checkpoint`` into OUTFILE (see the module's documentation),
    resuming it; exactly what ``smoothcert certify DATASET CHECKPOINT OUTFILE`` does with the
    options of the same names (``n0``, ``n``: ``--N0``, ``--N``; ``distributed_run``:
    ``--distributed``; ``progress=False``: ``--no-progress``), whose command line the
    configuration records.

    A torchrun process (``RANK``/``WORLD_SIZE`` set) certifies its shard into a part file and
    rank 0 merges them (:mod:`smoothcert.distributed`). Returns a
    :class:`~smoothcert.jobs.common.RunSummary`. A bad argument is a one-line
    :class:`SmoothCertError` naming its option, before anything is loaded or written
    (:func:`~smoothcert.jobs.checks.check_certify_args`)."""
    check_certify_args(
        outfile,
        n0=n0,
        n=n,
        alpha=alpha,
        batch=batch,
        skip=skip,
        start=start,
        max=max,
        seed=seed,
        bilateral=bilateral,
        cert_samples=cert_samples,
        cert_failure_prob=cert_failure_prob,
        adaptive=adaptive,
        radii=radii,
        rtol=rtol,
    )
    k, alpha, cert_failure_prob = float(k), float(alpha), float(cert_failure_prob)
    sigma = None if sigma is None else float(sigma)
    sigma0 = None if sigma0 is None else float(sigma0)
    radii = None if radii is None else [float(r) for r in radii]
    rtol = None if rtol is None else float(rtol)
    checkpoint, outfile = str(checkpoint), str(outfile)
    data_dir = None if data_dir is None else str(data_dir)
    device = None if device is None else str(device)
    command = format_command(
        "certify",
        [dataset, checkpoint, outfile],
        {
            "--noise": noise,
            "--k": k,
            "--sigma": sigma,
            "--sigma0": sigma0,
            "--norm": norm,
            "--N0": n0,
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
            "--bilateral": bilateral,
            "--cert-samples": cert_samples,
            "--cert-failure-prob": cert_failure_prob,
            "--trust-checkpoint": trust_checkpoint,
            "--adaptive": adaptive,
            "--radii": radii,
            "--rtol": rtol,
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
            norm=norm,
        )
        smooth = Smooth(
            inputs.model,
            inputs.dataset.num_classes,
            inputs.noise,
            device=inputs.device,
            norm=norm,
            samples=cert_samples,
            failure_prob=cert_failure_prob,
            progress=progress,
        )
        cert = smooth.certificate  # builds (and caches) a Monte Carlo table, with its progress bar
        if bilateral and cert.method == "monte-carlo":
            raise SmoothCertError(
                "--bilateral needs bound values V(p, r), which the Monte Carlo "
                f"certificate of the {inputs.noise.name} noise does not give"
            )
        config = {
            **source_config(command, dataset, split, data_dir, checkpoint, inputs, sigma0),
            "norm": norm,
            "N0": n0,
            "N": n,
            "alpha": alpha,
            "bilateral": bilateral,
            "batch": batch,
            "skip": skip,
            "start": start,
            "max": max,
            "seed": seed,
            "device": str(inputs.device),
            "certificate": cert.describe(),
            "failure_prob": smooth.failure_prob(alpha),
            "confidence": smooth.confidence_note(alpha, bilateral),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        if inputs.resize is not None:  # radii are in the resized pixel space
            config["resize"] = inputs.resize
        if adaptive:  # fixed-N files keep their configuration as before (they resume)
            bound = adaptive_bound(smooth, alpha, n, radii)
            config["adaptive"] = adaptive_config(n, radii, rtol, bound)
            config["confidence"] = adaptive_confidence_note(smooth, alpha, bound)
            check = adaptive_row_checker(smooth, inputs.dataset, n0, bound, radii)

            def compute(rows, write, bar):
                certify_adaptive_indices(
                    smooth,
                    inputs.dataset,
                    rows,
                    write,
                    n0=n0,
                    n_max=n,
                    alpha=alpha,
                    batch=batch,
                    seed=seed,
                    radii=radii,
                    rtol=config["adaptive"]["rtol"] or sequential.DEFAULT_RTOL,
                    progress=bar,
                )
        else:
            check = row_checker(smooth, inputs.dataset, bilateral)

            def compute(rows, write, bar):
                certify_indices(
                    smooth,
                    inputs.dataset,
                    rows,
                    write,
                    n0=n0,
                    n=n,
                    alpha=alpha,
                    batch=batch,
                    seed=seed,
                    bilateral=bilateral,
                    progress=bar,
                )

        return write_rows(
            job,
            "certify",
            outfile,
            header(bilateral, adaptive),
            config,
            inputs.indices,
            check,
            compute,
            progress=progress,
            note=config["confidence"],
        )


# ----------------------------------------------------------------------------- rows
def header(bilateral: bool, adaptive: bool = False) -> list[str]:
    if adaptive:
        return HEADER + ADAPTIVE_COLUMNS + [EXACT_RADIUS_COLUMN]
    return HEADER + ["pA_lower"] + (["pB_upper"] if bilateral else []) + [EXACT_RADIUS_COLUMN]


def format_row(
    idx: int,
    label: int,
    prediction: int,
    radius: float,
    seconds: float,
    p_a: float,
    p_b: float | None = None,
) -> str:
    correct = int(prediction == label)
    elapsed = format_time(seconds)
    # the reference's "{}\t{}\t{}\t{:.3}\t{}\t{}", but the radius rounded toward zero (the
    # reference's round to nearest printed 0.2496 as 0.25), then our full-precision columns
    row = (
        f"{idx}\t{label}\t{prediction}\t{format_radius_cell(radius)}\t{correct}\t{elapsed}\t{p_a!r}"
    )
    if p_b is not None:
        row += f"\t{p_b!r}"
    return row + f"\t{float(radius)!r}"


def format_adaptive_row(idx: int, label: int, result, seconds: float) -> str:
    """The row of an ``adaptive`` run from a :class:`smoothcert.sequential.AdaptiveCertificate`
    (columns: see the module's documentation)."""
    correct = int(result.prediction == label)
    radius = float(result.radius)
    return (
        f"{idx}\t{label}\t{result.prediction}\t{format_radius_cell(radius)}\t{correct}\t"
        f"{format_time(seconds)}\t{float(result.pA_lower)!r}\t"
        f"{float(result.pA_upper)!r}\t{int(result.samples)}\t{stop_cell(result.reason)}\t"
        f"{radius!r}"
    )


def certify_indices(
    smooth: Smooth,
    dataset,
    indices,
    write,
    *,
    n0: int,
    n: int,
    alpha: float,
    batch: int,
    seed: int,
    bilateral: bool = False,
    progress=None,
) -> None:
    """Certify the inputs ``indices`` of ``dataset`` and ``write`` one row each, in order.

    The noise of input ``idx`` is seeded from ``derive_seed(seed, idx)``, so a row does not
    depend on which other indices are run, in which order, or by which process (sharding)."""

    def run(i, x):
        return smooth.certify_detailed(
            x, n0, n, alpha, batch, generator=derive_seed(seed, i), bilateral=bilateral
        )

    def row(i, label, result, seconds):
        prediction, radius, p_a, p_b = result
        return format_row(i, label, prediction, radius, seconds, p_a, p_b)

    write_each(dataset, indices, write, progress, run, row)


def certify_adaptive_indices(
    smooth: Smooth,
    dataset,
    indices,
    write,
    *,
    n0: int,
    n_max: int,
    alpha: float,
    batch: int,
    seed: int,
    radii=None,
    rtol: float = sequential.DEFAULT_RTOL,
    progress=None,
) -> None:
    """:func:`certify_indices` with :meth:`Smooth.certify_adaptive` (budget ``n_max``, grid
    ``radii`` or tolerance ``rtol``): the same seeds, hence the same samples as a fixed-N run
    as far as it goes; one row each (:func:`format_adaptive_row`)."""

    def run(i, x):
        return smooth.certify_adaptive(
            x, n0, n_max, alpha, batch, radii=radii, generator=derive_seed(seed, i), rtol=rtol
        )

    write_each(dataset, indices, write, progress, run, format_adaptive_row)


# ----------------------------------------------------------------------------- rows read back
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
        raise ValueError(
            f"radius {cells[3]} ({EXACT_RADIUS_COLUMN} {cells[-1]}) is not "
            f"{how} {radius!r} at pA_lower {p_a!r}; a damaged file, or one "
            "written by a version of smoothcert whose certificate differs"
        )


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
        _check_radius_cells(cells, 0.0 if abstain else smooth.radius(p_a, p_b), p_a)

    return check


def adaptive_row_checker(smooth: Smooth, dataset, n0: int, bound, radii=None):
    """``check(cells)`` for a row of an ``adaptive`` run read back (resume, part files): the
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
        check_samples_and_stop(
            cells, 8, looks, f"N0 = {n0} plus a look of the schedule up to N = {n_max}"
        )
        abstain = p_a < 0.5
        if abstain != (prediction == Smooth.ABSTAIN):
            raise ValueError(f"predict {prediction} does not match pA_lower {p_a!r}")
        if abstain:
            radius, how = 0.0, "the abstention's radius"
        elif grid is None:
            radius, how = smooth.radius(p_a), "the certificate's radius"
        else:
            j = sequential.grid_index(thresholds, p_a)
            radius = float(grid[j]) if j >= 0 else 0.0
            how = "the largest grid radius certified,"
        _check_radius_cells(cells, radius, p_a, how)

    return check


# ----------------------------------------------------------------------------- adaptive runs
def adaptive_bound(smooth: Smooth, alpha: float, n_max: int, radii=None):
    """The time-uniform bound :meth:`Smooth.certify_adaptive` uses for this run (the library's
    ``grid_bound`` of the grid thresholds, or its schedule without a grid): its ``looks`` are
    the only estimation sample sizes a row can have, and :func:`bound_description` records it
    in the configuration."""
    thresholds = (
        None
        if radii is None
        else sequential.grid_thresholds(smooth.certificate, sequential.check_radii(radii))
    )
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
        desc = {
            "name": "union-cp",
            "alpha": bound.alpha,
            "looks": bound.looks.tolist(),
            "levels": bound.alphas.tolist(),
        }
    return {**desc, "time_uniform": True}


def adaptive_config(n_max: int, radii, rtol, bound) -> dict:
    """The ``adaptive`` entry of OUTFILE.config.json: everything that decides an adaptive
    row besides the shared options (resume refuses a difference): the budget, the grid, rtol
    (None with a grid; the default when not given) and the bound (:func:`bound_description`)."""
    return {
        "n_max": n_max,
        "radii": None if radii is None else [float(r) for r in radii],
        "rtol": None
        if radii is not None
        else (sequential.DEFAULT_RTOL if rtol is None else float(rtol)),
        "bound": bound_description(bound),
    }


def adaptive_confidence_note(smooth: Smooth, alpha: float, bound) -> str:
    """One line: with which probability the certificates of an ``adaptive`` run hold, and
    why the level holds whenever sampling stops (the bound is time-uniform)."""
    cert = smooth.certificate
    table = float(getattr(cert, "failure_prob", 0.0))
    looks = bound.looks
    note = (
        f"each certified radius ({smooth.norm}, {cert.method} certificate of "
        f"{smooth.noise!r}) holds with probability >= {1 - alpha - table:.6g}: "
        f"alpha = {alpha:g} per input for a time-uniform lower bound of p_A (one-sided "
        f"Clopper-Pearson at each of the {looks.size} looks, from {looks[0]} to "
        f"{looks[-1]} samples, of a schedule fixed before sampling, alpha split over them "
        "by a union bound: valid at whichever look sampling stops)"
    )
    if table:
        note += f" + {table:g} for the Monte Carlo certificate table, shared by all inputs"
    return note
