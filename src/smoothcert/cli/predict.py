"""``smoothcert predict``: the smoothed classifier's predictions on a dataset (the reference's
``code/predict.py``, any noise): the options and the library job
:func:`smoothcert.jobs.predict_file`, which checks them, writes the results file (its rows and
``OUTFILE.config.json``: see :mod:`smoothcert.jobs.predict`), resumes it and shards a torchrun
job. ``--adaptive`` is sequential PREDICT (``--N`` the per-input budget).
"""

from __future__ import annotations

from . import common


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="smoothed predictions on a dataset",
        description="Run PREDICT of Cohen et al. 2019 (the smoothed classifier's prediction, or "
        "-1 to abstain) on every skip-th input of a dataset split. Writes the "
        "reference's tab-separated rows to OUTFILE and the configuration to "
        "OUTFILE.config.json; re-running resumes.",
    )
    common.add_run_arguments(p)
    common.add_noise_arguments(p, certificate=False)
    p.add_argument(
        "--N",
        type=int,
        default=100_000,
        help="number of noise samples (default: 100000); with --adaptive the most "
        "samples per input (the budget)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=0.001,
        help="failure probability of the test (default: 0.001)",
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="sample in growing batches and return the class as soon as a "
        "time-uniform test decides it (same guarantee): --N becomes the "
        "per-input budget; adds the columns samples and stop",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from ..jobs import predict_file  # checks every option first (smoothcert.jobs.checks)

    return predict_file(
        args.dataset,
        args.checkpoint,
        args.outfile,
        n=args.N,
        alpha=args.alpha,
        adaptive=args.adaptive,
        **common.job_options(args),
    ).status
