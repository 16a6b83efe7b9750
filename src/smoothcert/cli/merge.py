"""``smoothcert merge``: join the part files of a distributed run (``OUTFILE.part-R-of-W``) into
OUTFILE, in index order, with its configuration (see :mod:`smoothcert.distributed`).

A distributed ``certify`` / ``predict`` merges its part files itself at the end; this command is
for part files left behind (a job without a process group, or one that stopped early), or to
check them. The parts must share one configuration, and hold every selected index exactly once.
"""

from __future__ import annotations

import sys

from .. import distributed
from ..results import check_outfile, outfile_lock


def add_parser(sub) -> None:
    p = sub.add_parser(
        "merge",
        help="join the part files of a distributed run into one results file",
        description="Join part files OUTFILE.part-R-of-W of a distributed certify or predict run "
        "into OUTFILE (and OUTFILE.config.json), in index order, written atomically. "
        "The parts must share one configuration; an index that is duplicated or "
        "missing is reported and nothing is written.",
    )
    p.add_argument("outfile", metavar="OUTFILE", help="the results file to write")
    p.add_argument(
        "parts", metavar="PART", nargs="*", help="part files (default: every OUTFILE.part-*)"
    )
    p.add_argument(
        "--remove-parts",
        action="store_true",
        help="delete the part files (and their configurations) once merged",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    check_outfile(args.outfile)
    with outfile_lock(args.outfile):  # not while a run writes OUTFILE or its parts
        rows, parts = distributed.merge(
            args.outfile, args.parts or None, remove_parts=args.remove_parts
        )
    print(
        f"merged {rows} rows from {parts} part file{'s' * (parts != 1)} into {args.outfile}",
        file=sys.stderr,
    )
    return 0
