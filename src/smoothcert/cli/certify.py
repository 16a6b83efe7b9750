"""``smoothcert certify``: certify the smoothed classifier on a dataset (the reference's
``code/certify.py``, any noise, l2 or l-infinity): the options and the library job
:func:`smoothcert.jobs.certify_file`, which checks them, writes the results file (its rows and
``OUTFILE.config.json``: see :mod:`smoothcert.jobs.certify`), resumes it and shards a torchrun
job. ``--adaptive`` is sequential certification (``--N`` the per-input budget, ``--radii`` a
grid or ``--rtol`` a tolerance).
"""

from __future__ import annotations

from .. import sequential
from . import common


def add_parser(sub) -> None:
    p = sub.add_parser(
        "certify",
        help="certify a smoothed classifier on a dataset",
        description="Certify the smoothed classifier around every skip-th input of a dataset "
        "split (CERTIFY of Cohen et al. 2019, any noise and l2 or l-inf radius). "
        "Writes the reference's tab-separated rows to OUTFILE and the "
        "configuration to OUTFILE.config.json; re-running resumes.",
    )
    common.add_run_arguments(p)
    common.add_noise_arguments(p)
    p.add_argument("--N0", type=int, default=100, help="samples to select the class (default: 100)")
    p.add_argument(
        "--N",
        type=int,
        default=100_000,
        help="samples to estimate p_A (default: 100000); with --adaptive the most "
        "samples per input (the budget n_max)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.001,
        help="failure probability of each input's bound of p_A (default: 0.001)",
    )
    p.add_argument(
        "--bilateral",
        action="store_true",
        help="multi-class certificate from bounds of p_A and of the runner-up "
        "(alpha split in halves)",
    )
    a = p.add_argument_group("sequential certification")
    a.add_argument(
        "--adaptive",
        action="store_true",
        help="sample in growing batches and stop as soon as the answer is decided "
        "(a time-uniform bound of p_A, same guarantee): --N becomes the "
        "per-input budget; adds the columns pA_upper, samples and stop",
    )
    a.add_argument(
        "--radii",
        nargs="+",
        type=float,
        metavar="R",
        default=None,
        help="with --adaptive: the radius grid (e.g. the radii of the table you "
        "will make; strictly increasing, >= 0): each input gets the largest "
        "grid radius certified, and stops as soon as that one is decided; "
        "include 0 to also decide the prediction (certified accuracy at r = 0)",
    )
    a.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="with --adaptive and no --radii: stop when more samples cannot raise "
        "the radius by more than this fraction (default: "
        f"{sequential.DEFAULT_RTOL})",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..jobs import certify_file  # checks every option first (smoothcert.jobs.checks)

    return certify_file(
        args.dataset,
        args.checkpoint,
        args.outfile,
        norm=args.norm,
        n0=args.N0,
        n=args.N,
        alpha=args.alpha,
        bilateral=args.bilateral,
        cert_samples=args.cert_samples,
        cert_failure_prob=args.cert_failure_prob,
        adaptive=args.adaptive,
        radii=args.radii,
        rtol=args.rtol,
        **common.job_options(args),
    ).status
