"""``smoothcert demo``: train, certify with four noise / threat-model settings, tabulate, plot."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: train + certify on digits, print tables, write plots",
        description="Train a digits_cnn with Gaussian noise on the embedded digits data (or reuse "
        "the trained model), certify a fixed subset of the test set with the "
        "Gaussian and the l2 family against l2 attacks and with the Gaussian and the "
        "mixed l-inf family against l-inf attacks, print the certified-accuracy "
        "tables and write result files, tables and plots under OUTDIR. "
        "Deterministic (one CPU thread, the same results on every machine); "
        "about 35 s of CPU from a cold start.",
    )
    p.add_argument("--outdir", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a tiny version of the same pipeline (seconds; for tests)",
    )
    p.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)"
    )
    p.add_argument("--no-progress", action="store_true", help="no training progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    run_demo(args.outdir, quick=args.quick, device=args.device, progress=not args.no_progress)
    return 0
