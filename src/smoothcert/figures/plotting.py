"""The drawing and saving every figure shares: headless figures, the palette's grid and legend
style, the caption-sized title, and files written without timestamps.

A figure module draws its panels from its computed result; :func:`render` does the rest (title,
layout, NAME.png/.pdf/.json/.csv). Plots are drawn headless (Agg) in the colour-blind-safe
palette of :mod:`smoothcert.palette`.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import SmoothCertError
from ..palette import GRID

#: legend sample length (em): long enough that a dashed line shows its gaps beside a marker
HANDLE = 4.0


def new_figure(
    ncols: int, width: float = 5.0, height: float = 4.2, nrows: int = 1, height_ratios=None
):
    """A headless figure with a row-major list of ``nrows * ncols`` axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, ncols, height_ratios=height_ratios)
    axes = [fig.add_subplot(grid[i, j]) for i in range(nrows) for j in range(ncols)]
    return fig, axes


def legend(ax, **kw):
    """A legend with samples long enough to show every dash pattern next to its marker."""
    kw.setdefault("handlelength", HANDLE)
    kw.setdefault("fontsize", 7.5)
    return ax.legend(**kw)


def decorate(
    ax,
    xlabel: str | None = None,
    ylabel: str | None = None,
    title: str | None = None,
    legend_kw: dict | None = None,
) -> None:
    """Axis labels, the palette's grid, a legend (when ``legend_kw`` is given) and a panel
    title at 10 pt."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.grid(True, color=GRID)
    if legend_kw is not None:
        legend(ax, **legend_kw)
    if title is not None:
        ax.set_title(title, fontsize=10)


def finish(fig, title: str) -> None:
    """Caption-sized title above the panels (wrapped to the figure width), then tight layout."""
    width = fig.get_size_inches()[0]
    lines = textwrap.fill(title, width=int(width * 13.5))
    fig.suptitle(lines, fontsize=9.5, x=0.008, y=0.995, ha="left", va="top")
    fig.tight_layout()  # makes room for the suptitle too


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def _fmt(x) -> str:
    if isinstance(x, (str, bytes)):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return f"{float(x):.10g}"


def _make_outdir(outdir) -> Path:
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except (OSError, FileExistsError) as exc:
        raise SmoothCertError(
            f"{outdir}: cannot create the output folder: {exc.strerror or exc}"
        ) from None
    return outdir


def _write_csv(path: Path, header: Sequence[str], rows: Iterable) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow([_fmt(x) for x in row])


def save(result: dict, fig, outdir, csv_header: Sequence[str], csv_rows: Iterable) -> dict:
    """Write NAME.png/.pdf (the figure), NAME.json (all but the series) and NAME.csv, with no
    timestamp or version in the files (reruns give identical bytes); ``result["figure"]`` is the
    matplotlib Figure."""
    if outdir is None:
        return result
    result["figure"] = fig
    outdir = _make_outdir(outdir)
    name = result["name"]
    files = [outdir / f"{name}.{ext}" for ext in ("png", "pdf", "json", "csv")]
    try:
        fig.savefig(files[0], dpi=150, metadata={"Software": None})
        fig.savefig(files[1], metadata={"CreationDate": None, "Producer": None, "Creator": None})
        meta = {k: v for k, v in result.items() if k not in ("series", "files", "figure")}
        meta["files"] = [f.name for f in files]
        files[2].write_text(json.dumps(_jsonable(meta), indent=1) + "\n")
        _write_csv(files[3], csv_header, csv_rows)
    except OSError as exc:
        raise SmoothCertError(
            f"{outdir}: cannot write the figure {name}: {exc.strerror or exc}"
        ) from None
    result["files"] = [str(f) for f in files]
    return result


#: a figure's drawing: its computed result -> (figure with its panels drawn, CSV header,
#: CSV rows)
Draw = Callable[[dict], tuple]


def render(result: dict, draw: Draw, outdir) -> dict:
    """Draw ``result`` (when ``outdir`` is given), title it with its caption and write its
    files; without ``outdir`` the result comes back as computed."""
    if outdir is None:
        return result
    fig, header, rows = draw(result)
    finish(fig, result["title"])
    return save(result, fig, outdir, header, rows)
