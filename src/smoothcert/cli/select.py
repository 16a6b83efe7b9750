"""``smoothcert select``: choose the noise configuration on validation results files and report
the test result of the choice only (see :mod:`smoothcert.selection`)."""

from __future__ import annotations

import json
import math
import sys

from ..errors import SmoothCertError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "select",
        help="choose the noise on validation results, report its test result only",
        description="Choose, among certify results files of one model's candidate noise "
        "configurations run on VALIDATION images, the one with the highest "
        "certified accuracy at --radius R (or mean certified accuracy over "
        "--radii LO:HI, the exact integral of the step function / width); ties go "
        "to the file given first. With --test, report the certified accuracy of "
        "the chosen configuration on its test file (same configuration, images "
        "disjoint from the validation ones), with its sampling error; the test "
        "scores of the other configurations are never computed.",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="VAL.tsv",
        help="certify results files (with OUTFILE.config.json) on the validation "
        "images, one per candidate configuration",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--radius", type=float, metavar="R", help="criterion: certified accuracy at radius R"
    )
    which.add_argument(
        "--radii",
        metavar="LO:HI",
        help="criterion: mean certified accuracy over radii [LO, HI] (exact)",
    )
    p.add_argument(
        "--test",
        nargs="+",
        metavar="TEST.tsv",
        default=None,
        help="the test results files: exactly one per validation file, with its "
        "configuration, on images disjoint from the validation images",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def parse_range(text: str) -> tuple[float, float]:
    """``"LO:HI"`` -> ``(lo, hi)``, finite with 0 <= lo < hi (one-line error otherwise)."""
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise SmoothCertError(f"--radii must be LO:HI (e.g. 0:1), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise SmoothCertError(f"--radii LO:HI needs 0 <= LO < HI, both finite, got {text!r}")
    return lo, hi


def run(args) -> int:
    from ..selection import select

    radii = None if args.radii is None else parse_range(args.radii)
    result = select(args.files, radius=args.radius, radii=radii, test_files=args.test)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(result.format())
    return 0


__all__ = ["add_parser", "parse_range", "run"]
