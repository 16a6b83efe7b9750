"""``smoothcert figures``: recompute the paper's figures (sections 3-4) as PNG + PDF + data.

Each figure is written as ``NAME.png``, ``NAME.pdf``, ``NAME.json`` (settings, cited numbers,
checks) and ``NAME.csv`` (the plotted series); see :mod:`smoothcert.figures`.
"""

from __future__ import annotations

import sys
import time

from ..figures import FIGURE_NAMES, make_figures


def add_parser(sub) -> None:
    p = sub.add_parser(
        "figures",
        help="recompute the paper's figures (PNG, PDF and their numbers)",
        description="Recompute the figures of sections 3-4 of the paper: "
        + ", ".join(FIGURE_NAMES)
        + ". Each is written as NAME.png and NAME.pdf "
        "with a caption-sized title, NAME.json (settings, cited numbers, checks) "
        "and NAME.csv (plotted series). Seeds are fixed, the computation runs "
        "single-threaded with its own certificate cache and the files carry no "
        "timestamp: reruns write the same files byte for byte.",
    )
    p.add_argument(
        "--outdir",
        default="docs/figures",
        help="output folder (created if missing; default: docs/figures)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=FIGURE_NAMES,
        metavar="NAME",
        help="make only these figures (choices: " + ", ".join(FIGURE_NAMES) + ")",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sample sizes and grids (seconds; for tests and previews)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="base seed of the Monte Carlo draws (default: 0)"
    )
    p.set_defaults(func=run)


def run(args) -> int:
    start = time.perf_counter()

    def report(name, result, seconds):
        files = result.get("files") or []
        shown = files[0].rsplit(".", 1)[0] + ".{png,pdf,json,csv}" if files else "(not written)"
        print(f"{name}: {shown} ({seconds:.1f} s)")
        print(f"  {result['headline']}")
        sys.stdout.flush()

    make_figures(args.outdir, only=args.only, quick=args.quick, seed=args.seed, progress=report)
    print(f"total {time.perf_counter() - start:.1f} s")
    return 0
