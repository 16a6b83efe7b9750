"""``smoothcert analyze``: certified-accuracy tables and plots from ``certify`` outputs.

When a file has a ``samples`` column (``certify --adaptive``), the table gains two last columns,
the mean forward passes per input and their total, for every file: from its ``samples``
column, or N0 + N per input for a fixed-N ``smoothcert certify`` file (``-`` where unknown).
Without such a file the tables are the reference's."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..analysis import (
    ENVELOPE_LABEL,
    NORM_LABELS,
    REFERENCE_RADII,
    SAMPLES_COLUMN,
    TABLE_FORMATS,
    certified_accuracy,
    default_labels,
    format_radius,
    format_table,
    forward_passes,
    plot_certified_accuracy,
    read_results,
    results_setting,
)
from ..errors import SmoothCertError

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(c, c) for c in text)


def split_file_argument(arg: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` -> (LABEL, PATH); a plain PATH (even one holding '=') -> (None, PATH).

    An argument that names an existing file is a path; otherwise the first '=' whose right
    side is an existing file splits it (labels may hold '=', e.g. ``$\\sigma = 0.25$``), and
    failing that the first '='.
    """
    if "=" not in arg or Path(arg).is_file():
        return None, arg
    cuts = [i for i, c in enumerate(arg) if c == "="]
    for i in cuts:
        if Path(arg[i + 1 :]).is_file():
            return arg[:i], arg[i + 1 :]
    return arg[: cuts[0]], arg[cuts[0] + 1 :]


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


def common_norm(paths, settings) -> str:
    """The one norm of all files; mixing l2 and l-inf radii in one table is refused."""
    norms = {s["norm"] for s in settings}
    if len(norms) > 1:
        which = ", ".join(
            f"{p} ({s['norm']}{'' if s['config'] else ', no config: l2'})"
            for p, s in zip(paths, settings, strict=True)
        )
        raise SmoothCertError(
            f"cannot compare l2 and linf radii in one table or plot: {which}; "
            "analyze each norm separately"
        )
    return norms.pop()


def _check_plot_path(path: str) -> None:
    """What :func:`plot_certified_accuracy` would refuse, checked before anything is written:
    the suffix, a folder in the way, a missing folder."""
    p = Path(path)
    if p.suffix.lower() not in (".png", ".pdf"):
        raise SmoothCertError(f"{path}: plot file must end in .png or .pdf")
    if p.is_dir():
        raise SmoothCertError(f"{path}: cannot write the plot: it is a directory")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise SmoothCertError(f"{path}: cannot write the plot: directory {parent} does not exist")


def add_parser(sub) -> None:
    radii_text = " ".join(format_radius(r) for r in REFERENCE_RADII)
    p = sub.add_parser(
        "analyze",
        help="certified-accuracy tables and plots from certify outputs",
        description="Certified accuracy (the fraction of examples classified correctly with a "
        "certified radius >= r) of each results file of certify (the reference "
        "tab-separated format of Cohen et al. 2019) at the given radii, as a "
        "markdown, LaTeX or CSV table (best per radius marked), and optionally a "
        "plot of certified accuracy against radius. When a file has a samples "
        "column (certify --adaptive), the table adds the mean forward passes per "
        "input and their total for every file (N0 + N per input for a fixed-N "
        "file).",
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="results file, or LABEL=FILE (label default: from the path, e.g. "
        "noise_0.25 for .../noise_0.25/test/sigma_0.25)",
    )
    p.add_argument(
        "--radii",
        nargs="+",
        type=float,
        metavar="R",
        default=None,
        help=f"radii of the table columns (default: {radii_text}, the reference's "
        "CIFAR-10 table; its ImageNet table uses 0.5 1.0 1.5 2.0 2.5 3.0)",
    )
    p.add_argument(
        "--format",
        choices=TABLE_FORMATS,
        default="markdown",
        help="table format (default: markdown)",
    )
    p.add_argument(
        "--envelope",
        action="store_true",
        help=f"add a row '{ENVELOPE_LABEL}': the best accuracy over the files at each radius",
    )
    p.add_argument(
        "--best",
        choices=["first", "all", "none"],
        default="first",
        help="which rows are marked best at each radius: the first row with the "
        "highest accuracy, as the reference does (default), all tied rows, "
        "or none",
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="PATH",
        default=None,
        help="write the table to PATH instead of standard output",
    )
    p.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help="also plot certified accuracy against radius to PATH (.png or .pdf)",
    )
    p.add_argument(
        "--max-radius",
        type=float,
        default=None,
        help="right end of the plot's radius axis (default: the largest certified "
        "radius, rounded up to a multiple of 0.25)",
    )
    p.add_argument(
        "--norm-label",
        default=None,
        help="x-axis label of the plot (default: 'l2 radius' or 'l\u221e radius', "
        "the norm in FILE.config.json; l2 for a file without one)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    radii = list(REFERENCE_RADII) if args.radii is None else list(args.radii)
    bad = [r for r in radii if not (math.isfinite(r) and r >= 0)]
    if bad:
        raise SmoothCertError(f"radii must be finite and >= 0, got {bad[0]}")
    if args.max_radius is not None and not (math.isfinite(args.max_radius) and args.max_radius > 0):
        raise SmoothCertError(f"--max-radius must be a positive number, got {args.max_radius}")

    if args.plot is not None:  # before the table is written
        _check_plot_path(args.plot)

    given = [split_file_argument(a) for a in args.files]
    for label, _ in given:
        if label is not None and not label:
            raise SmoothCertError("empty label in a LABEL=FILE argument")
    unlabelled = iter(default_labels([path for label, path in given if label is None]))
    plot_labels = [label if label is not None else next(unlabelled) for label, _ in given]
    tables = [read_results(path) for _, path in given]
    settings = [results_setting(path) for _, path in given]
    norm = common_norm([path for _, path in given], settings)
    labels = [
        _latex_escape(auto) if label is None and args.format == "latex" else auto
        for (label, _), auto in zip(given, plot_labels, strict=True)
    ]

    rows = [(label, certified_accuracy(t, radii)) for label, t in zip(labels, tables, strict=True)]
    samples = None
    if any(SAMPLES_COLUMN in t.extra for t in tables):  # an adaptive run: show the cost
        samples = [forward_passes(t) for t in tables]
    table = format_table(
        rows, radii, args.format, envelope=args.envelope, best=args.best, samples=samples, norm=norm
    )
    new_output = args.output is not None and not Path(args.output).exists()
    if args.output is None:
        sys.stdout.write(table)
    else:
        try:
            Path(args.output).write_text(table, encoding="utf-8")
        except OSError as exc:
            raise SmoothCertError(
                f"{args.output}: cannot write the table: {exc.strerror or exc}"
            ) from None
    if args.plot is not None:
        try:
            plot_certified_accuracy(
                list(zip(plot_labels, tables, strict=True)),
                args.plot,
                max_radius=args.max_radius,
                norm_label=args.norm_label or NORM_LABELS[norm],
            )
        except SmoothCertError:
            if new_output:  # no table left behind by a failed run
                Path(args.output).unlink(missing_ok=True)
            raise
    print(
        f"# {NORM_LABELS[norm]}: "
        + "; ".join(
            f"{label}: {s['noise']} sigma {_number(s['sigma'])}"
            if s["config"]
            else f"{label}: no {Path(path).name}.config.json, l2 radii as the reference's"
            for label, (_, path), s in zip(plot_labels, given, settings, strict=True)
        ),
        file=sys.stderr,
    )
    return 0
