"""Certified-accuracy analysis of ``certify`` outputs: read them, tabulate them, plot them.

The results format is the one of Cohen, Rosenfeld & Kolter (2019), ``code/certify.py`` of
locuslab/smoothing: tab-separated, header ``idx label predict radius correct time`` (in any
order, possibly followed by extra columns such as ``pA_lower``), one row per example;
``predict = -1`` is an abstention (with ``correct = 0``); ``time`` is float seconds or
``H:MM:SS.ffffff`` (``str(datetime.timedelta)``). Our own files may start with ``#`` comment
lines (the configuration of the run); they are kept in :attr:`ResultsTable.comments`.

The certified accuracy at radius r is the fraction of rows with ``correct == 1`` and
``radius >= r`` (the reference's definition; abstentions count as wrong, and the denominator
is every row of the file). :func:`format_table` writes the reference's markdown and LaTeX
tables byte for byte (``analysis/{markdown,latex}/vary_noise_*`` of the reference repository).

Which radius is counted (a radius too large is never counted):

- a file with a ``radius_exact`` column (``certify`` writes it since the radius column is
  rounded toward zero): that full-precision radius, checked against the printed one;
- a file of an older ``smoothcert certify`` (it has ``FILE.config.json`` but no
  ``radius_exact``): its radius column was rounded to nearest (``"{:.3}"``), so a printed
  value may exceed the certified one by half a unit of its third digit. The radius is only
  known to lie in an interval; a row is counted at r when the whole interval is >= r, and
  when r falls inside the interval the radius is recomputed from the row's ``pA_lower``
  through the certificate of the configuration (closed form or quadrature: deterministic),
  else (a Monte Carlo table, no ``pA_lower``) the row is not counted;
- a file without ``FILE.config.json`` (the reference's own files, other tools): read as the
  reference reads it, the printed value taken as it is; this reproduces the reference's
  tables, and is only as safe as the tool that wrote the file.

An ``idx`` that repeats (two runs writing into one file, files concatenated) is refused.

Cost. :func:`forward_passes` gives the forward passes per input of a file: its ``samples``
column (``certify --adaptive`` writes it: N0 included), else N0 + N from ``FILE.config.json``
of a fixed-N ``smoothcert certify`` run; :func:`format_table` can add them as last columns
(``analyze`` does when one of its files has a ``samples`` column), so that adaptive and fixed
runs compare in one table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from .errors import SmoothCertError
from .results import config_path, read_config_file

__all__ = [
    "REQUIRED_COLUMNS",
    "REFERENCE_RADII",
    "REFERENCE_RADII_IMAGENET",
    "TABLE_FORMATS",
    "ENVELOPE_LABEL",
    "ResultsTable",
    "read_results",
    "parse_time",
    "certified_accuracy",
    "counted_radii",
    "certified_accuracy_curve",
    "format_radius",
    "format_table",
    "plot_certified_accuracy",
    "default_label",
    "default_labels",
    "EXACT_RADIUS_COLUMN",
    "format_radius_cell",
    "nearest_radius_bounds",
    "SAMPLES_COLUMN",
    "forward_passes",
    "SAMPLES_HEADS",
    "NORM_LABELS",
    "results_setting",
]

#: The columns every results file has (the reference's header, in its order).
REQUIRED_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
#: Radii of the reference's CIFAR-10 table (0.25 to 1.5 by 0.25): the default radii.
REFERENCE_RADII = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
#: Radii of the reference's ImageNet table (0.5 to 3.0 by 0.5).
REFERENCE_RADII_IMAGENET = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
TABLE_FORMATS = ("markdown", "latex", "csv", "text")
#: Row label of the envelope row (best certified accuracy over the classifiers, per radius).
ENVELOPE_LABEL = "best over classifiers"
#: The full-precision radius column ``certify`` writes after the reference's columns.
EXACT_RADIUS_COLUMN = "radius_exact"
#: The forward passes spent on each input (``certify --adaptive``; N0 included).
SAMPLES_COLUMN = "samples"
#: Heads of the two cost columns :func:`format_table` adds (csv: ``samples_per_input``,
#: ``samples_total``).
SAMPLES_HEADS = ("samples / input", "total samples")
#: the axis label of each threat model
NORM_LABELS = {"l2": "l2 radius", "linf": "l\u221e radius"}

_INT_COLUMNS = ("idx", "label", "predict", "correct")
_TIME_RE = re.compile(
    r"^(?:(?P<days>-?\d+) days?, )?(?P<h>\d+):(?P<m>[0-5]\d):(?P<s>[0-5]\d(?:\.\d+)?)$"
)


@dataclass(frozen=True, eq=False)
class ResultsTable:
    """The rows of one results file, column by column (numpy arrays of equal length)."""

    idx: np.ndarray  #: int64, index of the example in its data set
    label: np.ndarray  #: int64, true class
    predict: np.ndarray  #: int64, predicted class, -1 for an abstention
    radius: np.ndarray  #: float64, certified radius (0 for an abstention)
    correct: np.ndarray  #: int64, 1 when predict == label, else 0
    time_seconds: np.ndarray  #: float64, time spent on the example, in seconds
    #: Extra columns by name, in file order: float64 when every value is a number, else str.
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    path: str | None = None  #: the file it was read from, if any
    comments: tuple[str, ...] = ()  #: the ``#`` lines of the file, without the ``#``
    #: Files of an older smoothcert (radius rounded to nearest): the certified radius of row i
    #: lies in ``[radius_low[i], radius_high[i]]`` (``radius`` is the printed value); None
    #: when ``radius`` is the radius to count (see the module's documentation).
    radius_low: np.ndarray | None = None
    radius_high: np.ndarray | None = None
    #: ``resolve(rows) -> radii``: a certified radius of each of the rows (indices), within or
    #: below their interval (recomputed from pA_lower when possible, else ``radius_low``).
    resolve: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    @property
    def abstained(self) -> np.ndarray:
        """Boolean mask of the abstentions (``predict == -1``)."""
        return self.predict == -1

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column name: the required ones, then the extra ones."""
        return REQUIRED_COLUMNS + tuple(self.extra)

    def __getitem__(self, name: str) -> np.ndarray:
        """A column by its name in the file (``time`` gives :attr:`time_seconds`)."""
        if name == "time":
            return self.time_seconds
        if name in REQUIRED_COLUMNS:
            return getattr(self, name)
        try:
            return self.extra[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self.columns)}") from None


def parse_time(text: str) -> float:
    """Seconds of a ``time`` value: float seconds, or ``[D day[s], ]H:MM:SS[.ffffff]``.

    Raises :class:`ValueError` when ``text`` is neither.
    """
    text = text.strip()
    match = _TIME_RE.match(text)
    if match:
        days = int(match["days"] or 0)
        return days * 86400 + int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])
    value = float(text)  # ValueError if not a number
    if math.isnan(value):
        raise ValueError(f"not a time: {text!r}")
    return value


def _short(value: str, limit: int = 40) -> str:
    value = value if len(value) <= limit else value[:limit] + "..."
    return repr(value)


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        value = float(text)  # accept "3.0"; ValueError for anything else
        if not value.is_integer():
            raise ValueError(text) from None
        return int(value)


def read_results(path: str | Path) -> ResultsTable:
    """Read a results file of ``certify`` (the reference's format, see the module docstring).

    Blank lines and lines starting with ``#`` are skipped. Any problem (missing file, no or
    incomplete header, a row with the wrong number of columns, a value that is not a number,
    ``correct`` not 0/1, a negative or NaN radius) raises :class:`SmoothCertError` with a
    one-line message naming the file and the line.
    """
    path = Path(path)
    comments, header, raw = _read_cells(path, _read_lines(path))
    pos = {name: header.index(name) for name in header}
    ints, radius, seconds = _required_columns(path, raw, pos)
    _check_unique_idx(path, ints["idx"], [lineno for lineno, _ in raw])
    extra = _extra_columns(header, pos, raw)
    radius, low, high, resolve = _radii_to_count(path, raw, pos, extra, ints["predict"], radius)
    return ResultsTable(
        idx=ints["idx"],
        label=ints["label"],
        predict=ints["predict"],
        radius=radius,
        correct=ints["correct"],
        time_seconds=seconds,
        extra=extra,
        path=str(path),
        comments=tuple(comments),
        radius_low=low,
        radius_high=high,
        resolve=resolve,
    )


def _read_lines(path: Path) -> list[str]:
    """The lines of a results file; a file that cannot be read is a one-line error."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        raise SmoothCertError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SmoothCertError(f"{path}: is a directory, not a results file") from None
    except UnicodeDecodeError:
        raise SmoothCertError(f"{path}: not a text file (cannot decode it as UTF-8)") from None
    except OSError as exc:
        raise SmoothCertError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def _read_cells(
    path: Path, lines: list[str]
) -> tuple[list[str], list[str], list[tuple[int, list[str]]]]:
    """``(comments, header, [(lineno, cells)])``: the ``#`` lines, the header (checked: every
    required column once, no empty name) and the rows, each as wide as the header."""
    comments: list[str] = []
    header: list[str] | None = None
    header_line = 0
    raw: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(lines, start=1):
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split("\t")]
        if header is None:
            header, header_line = cells, lineno
            continue
        if len(cells) != len(header):
            raise SmoothCertError(
                f"{path}:{lineno}: expected {len(header)} tab-separated columns "
                f"(as in the header), found {len(cells)}"
            )
        raw.append((lineno, cells))
    if header is None:
        raise SmoothCertError(
            f"{path}: empty file, expected the header '{' '.join(REQUIRED_COLUMNS)}'"
        )
    _check_header(path, header, header_line)
    return comments, header, raw


def _check_header(path: Path, header: list[str], header_line: int) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        hint = " (is it tab-separated?)" if len(header) == 1 and " " in header[0] else ""
        raise SmoothCertError(
            f"{path}:{header_line}: header lacks column(s) {', '.join(missing)}{hint}"
        )
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise SmoothCertError(f"{path}:{header_line}: repeated column(s) {', '.join(dupes)}")
    if any(not c for c in header):
        raise SmoothCertError(f"{path}:{header_line}: empty column name in the header")


def _required_columns(
    path: Path, raw: list[tuple[int, list[str]]], pos: dict[str, int]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """``(ints, radius, seconds)``: the integer columns by name, the printed radius and the
    time in seconds, every value checked (``correct`` 0 or 1, radius >= 0)."""
    n = len(raw)
    ints = {name: np.empty(n, dtype=np.int64) for name in _INT_COLUMNS}
    radius = np.empty(n, dtype=np.float64)
    seconds = np.empty(n, dtype=np.float64)
    for row, (lineno, cells) in enumerate(raw):
        name = ""
        try:
            for name in _INT_COLUMNS:
                ints[name][row] = _parse_int(cells[pos[name]])
            name = "radius"
            radius[row] = float(cells[pos[name]])
            name = "time"
            seconds[row] = parse_time(cells[pos[name]])
        except (ValueError, OverflowError):
            raise SmoothCertError(
                f"{path}:{lineno}: column {name}: {_short(cells[pos[name]])} is not "
                + (
                    "a time (seconds or H:MM:SS.ffffff)"
                    if name == "time"
                    else "a number"
                    if name == "radius"
                    else "an integer"
                )
            ) from None
        if ints["correct"][row] not in (0, 1):
            raise SmoothCertError(
                f"{path}:{lineno}: column correct must be 0 or 1, got {cells[pos['correct']]}"
            )
        if not radius[row] >= 0:  # also NaN
            raise SmoothCertError(
                f"{path}:{lineno}: column radius must be >= 0, got {cells[pos['radius']]}"
            )
    return ints, radius, seconds


def _extra_columns(
    header: list[str], pos: dict[str, int], raw: list[tuple[int, list[str]]]
) -> dict[str, np.ndarray]:
    """The columns after the reference's, in file order: float64 when every value is a
    number, else str."""
    extra: dict[str, np.ndarray] = {}
    for name in header:
        if name in REQUIRED_COLUMNS:
            continue
        values = [cells[pos[name]] for _, cells in raw]
        try:
            extra[name] = np.array([float(v) for v in values], dtype=np.float64)
        except ValueError:
            extra[name] = np.array(values, dtype=str)
    return extra


def _radii_to_count(
    path: Path,
    raw: list[tuple[int, list[str]]],
    pos: dict[str, int],
    extra: dict[str, np.ndarray],
    predict: np.ndarray,
    radius: np.ndarray,
):
    """``(radius, radius_low, radius_high, resolve)`` of :class:`ResultsTable`: which radius
    is counted (see the module's documentation)."""
    texts = [cells[pos["radius"]] for _, cells in raw]
    low = high = resolve = None
    if EXACT_RADIUS_COLUMN in extra:  # the full-precision radius, printed toward zero
        radius = _exact_radii(path, raw, texts, pos[EXACT_RADIUS_COLUMN])
    elif config_path(path).exists():  # an older smoothcert: rounded to nearest
        try:
            bounds = [nearest_radius_bounds(t) for t in texts]
        except ValueError as exc:
            raise SmoothCertError(f"{path}: column radius: {exc}") from None
        low = np.array([b[0] for b in bounds], dtype=np.float64).reshape(-1)
        high = np.array([b[1] for b in bounds], dtype=np.float64).reshape(-1)
        resolve = _legacy_resolver(config_path(path), extra, predict, low, high)
    return radius, low, high, resolve


def _check_unique_idx(path, idx: np.ndarray, linenos: list[int]) -> None:
    """Refuse a file in which an ``idx`` repeats: each input is certified once per file, and a
    repeated row (two runs appending to one file, files concatenated) would be counted twice.
    Even identical rows are refused: they say that the file is not the output of one run."""
    if idx.size == 0:
        return
    _, first, counts = np.unique(idx, return_index=True, return_counts=True)
    if counts.max() <= 1:
        return
    seen: dict[int, int] = {}
    for row, i in enumerate(idx.tolist()):
        if i in seen:
            raise SmoothCertError(
                f"{path}:{linenos[row]}: idx {i} repeats line {linenos[seen[i]]} "
                f"({int((counts > 1).sum())} repeated idx in all): two runs wrote into this "
                "file, or files were joined; each input must appear once"
            )
        seen[i] = row


def format_radius_cell(radius: float) -> str:
    """The radius column of a results file: three significant digits rounded toward zero.

    The text has the shape of the reference's ``"{:.3}"`` (``0.249``, ``1.0``, ``1.23e+02``,
    ``0.0``, ``inf``), so tools that read the reference's files read it, but it never exceeds
    the radius: ``float(text) <= radius``, and ``radius - float(text)`` is below one unit of
    the third significant digit (``"{:.3}"`` rounds to nearest: 0.2496 would be ``0.25``).
    Raises ValueError for a negative or NaN radius."""
    x = float(radius)
    if not x >= 0:
        raise ValueError(f"a radius must be >= 0, got {radius!r}")
    if x == 0 or math.isinf(x):
        return f"{x + 0.0:.3}"  # 0.0 (also for -0.0), inf
    d = Decimal(x)  # the exact value of the float
    unit = Decimal(1).scaleb(d.adjusted() - 2)
    q = d.quantize(unit, rounding=ROUND_DOWN)
    text = f"{float(q):.3}"
    while float(text) > x:  # cannot happen for normal floats; a guard for subnormals
        q -= unit
        text = f"{float(q):.3}" if q > 0 else "0.0"
    return text


def _float_below(d: Decimal) -> float:
    """The largest float <= d."""
    f = float(d)
    return float(np.nextafter(f, -np.inf)) if Decimal(f) > d else f


def _float_above(d: Decimal) -> float:
    """The smallest float >= d."""
    f = float(d)
    return float(np.nextafter(f, np.inf)) if Decimal(f) < d else f


def nearest_radius_bounds(text: str) -> tuple[float, float]:
    """``(low, high)``: floats bounding every radius that ``"{:.3}"`` (round to nearest, as the
    reference and smoothcert before ``radius_exact`` wrote it) prints as ``text``: the printed
    value plus or minus half a unit of its third significant digit (a tenth of that below a
    power of ten: 0.9996 prints as ``1.0``). ``0.0`` and ``inf`` are exact."""
    try:
        p = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"not a radius: {text!r}") from None
    if p.is_nan() or p < 0:
        raise ValueError(f"not a radius: {text!r}")
    if p == 0 or p.is_infinite():
        return float(p), float(p)
    e = p.adjusted()
    half = Decimal(5).scaleb(e - 3)
    below = half / 10 if p == Decimal(1).scaleb(e) else half
    return max(_float_below(p - below), 0.0), _float_above(p + half)


def _exact_radii(path, raw, texts, col: int) -> np.ndarray:
    """The ``radius_exact`` column, each value checked against the printed radius."""
    out = np.empty(len(raw), dtype=np.float64)
    for row, ((lineno, cells), text) in enumerate(zip(raw, texts, strict=True)):
        value = cells[col]
        try:
            out[row] = float(value)
            ok = format_radius_cell(out[row]) == text
        except ValueError:
            ok = False
        if not ok:
            raise SmoothCertError(
                f"{path}:{lineno}: column {EXACT_RADIUS_COLUMN} {_short(value)} does not "
                f"print as the radius {_short(text)} (three digits toward zero): a damaged row"
            )
    return out


def _legacy_resolver(
    cpath: Path, extra: dict, predict: np.ndarray, low: np.ndarray, high: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """``resolve(rows)`` for a file of an older smoothcert (see :class:`ResultsTable`).

    The radius of a row is recomputed from its ``pA_lower`` (and ``pB_upper``) through the
    certificate of ``FILE.config.json`` when that certificate is deterministic (closed form,
    quadrature; a Monte Carlo table depends on its samples, seed and device and is not
    rebuilt). A recomputed radius is used when it lies in the row's interval (it then is the
    run's radius up to the printing); otherwise (another version's certificate, an edited
    row) the smaller of it and the interval's low end. Rows that cannot be recomputed get the
    low end: never more than the run certified."""
    memo: dict[int, float] = {}
    state: dict = {}

    def certificate():
        if "cert" not in state:
            state["cert"] = None
            try:
                cfg = json.loads(cpath.read_text(encoding="utf-8"))
                method = cfg["certificate"]["method"]
                p_a = extra.get("pA_lower")
                p_b = extra.get("pB_upper") if cfg.get("bilateral") else None
                if (
                    method in ("closed-form", "quadrature")
                    and p_a is not None
                    and p_a.dtype.kind == "f"
                    and (not cfg.get("bilateral") or (p_b is not None and p_b.dtype.kind == "f"))
                ):
                    from .certificates import get_certificate
                    from .noises import make_noise

                    noise = make_noise(
                        cfg["noise"], int(cfg["dim"]), k=float(cfg["k"]), sigma=float(cfg["sigma"])
                    )
                    cert = get_certificate(noise, cfg["norm"])
                    if cert.method == method:
                        state["cert"] = (cert, p_a, p_b)
            except (OSError, ValueError, KeyError, TypeError):  # SmoothCertError too
                pass
        return state["cert"]

    def radius_of(i: int) -> float:
        found = certificate()
        if found is None:
            return float(low[i])
        cert, p_a, p_b = found
        if predict[i] == -1:
            return 0.0
        try:
            if p_b is not None:
                value = float(cert.bilateral_radius(float(p_a[i]), float(p_b[i])))
            elif cert.method == "quadrature":
                value = float(cert.radius(float(p_a[i]), exact=True))
            else:
                value = float(cert.radius(float(p_a[i])))
        except ValueError:  # a pA_lower that is not a probability: SmoothCertError
            return float(low[i])
        if not value >= 0:
            return 0.0
        return value if low[i] <= value <= high[i] else min(value, float(low[i]))

    def resolve(rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        for i in rows.tolist():
            if i not in memo:
                memo[i] = radius_of(i)
        return np.array([memo[i] for i in rows.tolist()], dtype=np.float64)

    return resolve


def forward_passes(results: ResultsTable) -> tuple[float, int] | None:
    """``(mean, total)`` forward passes per input of a results file: its ``samples`` column
    (every value a whole number >= 1, else a :class:`SmoothCertError`), else for a file of a
    fixed-N ``smoothcert certify`` run N0 + N per input from ``FILE.config.json``; None when
    unknown (the reference's files, other tools) or when the file has no rows."""
    n = len(results)
    if n == 0:
        return None
    if SAMPLES_COLUMN in results.extra:
        col = results.extra[SAMPLES_COLUMN]
        ok = col.dtype.kind == "f" and bool(
            np.all(np.isfinite(col) & (col >= 1) & (col == np.floor(col)))
        )
        if not ok:
            bad = next(
                v
                for v in col.tolist()
                if not (isinstance(v, float) and math.isfinite(v) and v >= 1 and v == math.floor(v))
            )
            raise SmoothCertError(
                f"{results.path}: column {SAMPLES_COLUMN}: {_short(str(bad))} "
                "is not a number of forward passes (a whole number >= 1)"
            )
        total = int(sum(int(v) for v in col.tolist()))
        return total / n, total
    if results.path is None:
        return None
    cpath = config_path(results.path)
    try:
        cfg = json.loads(cpath.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cfg, dict) or "adaptive" in cfg:
        return None
    n0, big_n = cfg.get("N0"), cfg.get("N")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (n0, big_n)):
        return None
    return float(n0 + big_n), n * (n0 + big_n)


def results_setting(path: str) -> dict:
    """``{"norm", "noise", "sigma", "config"}`` of a results file, from ``PATH.config.json``
    (written by certify). A file without one (the reference's scripts) has l2 radii, as the
    reference's; ``config`` is then False. An unreadable configuration, or one with an unknown
    norm, is a one-line error."""
    cpath = config_path(path)
    if not cpath.is_file():
        return {"norm": "l2", "noise": None, "sigma": None, "config": False}
    config = read_config_file(cpath)
    norm = config.get("norm", "l2")
    if norm not in NORM_LABELS:
        raise SmoothCertError(f"{cpath}: unknown norm {norm!r} (expected l2 or linf)")
    return {
        "norm": norm,
        "noise": config.get("noise"),
        "sigma": config.get("sigma"),
        "config": True,
    }


def _radii_array(radii) -> np.ndarray:
    r = np.asarray(radii, dtype=np.float64)
    if np.isnan(r).any():
        raise SmoothCertError("radii must be numbers, got NaN")
    return r


def certified_accuracy(results: ResultsTable, radii) -> np.ndarray:
    """Certified accuracy at each radius: the fraction of rows with correct and radius >= r.

    ``radii`` is a number or an array; the result has its shape (float64). Identical, float
    for float, to the reference's ``(df["correct"] & (df["radius"] >= r)).mean()``.
    """
    r = _radii_array(radii)
    n = len(results)
    if n == 0:
        where = f"{results.path}: " if results.path else ""
        raise SmoothCertError(f"{where}no result rows: certified accuracy is undefined")
    good = results.correct == 1
    low = results.radius if results.radius_low is None else results.radius_low
    certified = np.sort(low[good])
    count = certified.size - np.searchsorted(certified, r, side="left")
    if results.radius_low is not None:  # an older file: settle the rows whose interval holds r
        flat, counts = r.reshape(-1), count.reshape(-1)
        for j, rj in enumerate(flat.tolist()):
            open_ = np.flatnonzero(good & (results.radius_low < rj) & (rj <= results.radius_high))
            if open_.size:
                values = (
                    results.resolve(open_)
                    if results.resolve is not None
                    else results.radius_low[open_]
                )
                counts[j] += int(np.count_nonzero(values >= rj))
        count = counts.reshape(count.shape)
    return count / n


def counted_radii(results: ResultsTable) -> np.ndarray:
    """The radius each row is counted with: ``radius``, or for a file of an older smoothcert
    the recomputed radius (see :class:`ResultsTable`), never more than the run certified."""
    if results.radius_low is None:
        return results.radius
    if results.resolve is None:
        return results.radius_low
    return results.resolve(np.arange(len(results)))


def certified_accuracy_curve(
    results: ResultsTable, max_radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """The exact step function r -> certified accuracy on [0, max_radius], for plotting.

    Returns ``(x, y)`` to draw with ``drawstyle="steps-post"``: the accuracy is ``y[i]`` on
    ``(x[i], x[i+1]]`` (it drops just after each certified radius).
    """
    if len(results) == 0:
        certified_accuracy(results, 0.0)  # raises the error
    radius = counted_radii(results)
    if results.radius_low is not None:  # the steps at the counted radii, exactly
        results = ResultsTable(
            idx=results.idx,
            label=results.label,
            predict=results.predict,
            radius=radius,
            correct=results.correct,
            time_seconds=results.time_seconds,
            path=results.path,
        )
    certified = np.sort(radius[results.correct == 1])
    breaks = np.unique(certified[(certified > 0) & (certified < max_radius)])
    x = np.concatenate([[0.0], breaks, [max_radius]])
    y = certified_accuracy(results, np.concatenate([breaks, [max_radius]]))
    y = np.concatenate([y, y[-1:]])
    return x, y


def format_radius(r: float) -> str:
    """A radius as a table writes it: shortest repr, ``0.25``, ``0.5``, ``1.0``, ``1.25``.

    The same text as the reference's ``"{:.3}".format(r)`` for every radius with at most
    three significant digits below 100 (all the reference's radii); other radii keep their
    digits (``1.125``, ``100.0``) where ``{:.3}`` would round (``1.12``, ``1e+02``).
    """
    return repr(float(f"{float(r):.12g}"))


def _best_mask(acc: np.ndarray, best: str) -> np.ndarray:
    mask = np.zeros(acc.shape, dtype=bool)
    if best == "none" or acc.size == 0:
        return mask
    if best == "first":  # the reference: np.argmax, so the first of tied rows only
        mask[acc.argmax(axis=0), np.arange(acc.shape[1])] = True
    else:
        mask = acc == acc.max(axis=0, keepdims=True)
    return mask


def format_table(
    rows: Sequence[tuple[str, Sequence[float]]],
    radii: Sequence[float],
    fmt: str = "markdown",
    *,
    envelope: bool = False,
    envelope_label: str = ENVELOPE_LABEL,
    best: str = "first",
    decimals: int = 2,
    samples: Sequence[tuple[float, int] | None] | None = None,
    norm: str = "l2",
) -> str:
    """A certified-accuracy table: one row per ``(label, accuracies at radii)``.

    ``fmt``: ``markdown`` or ``latex``, the reference's tables byte for byte (accuracies with
    ``decimals`` decimals, the best row per radius marked ``<b>*</b>`` / ``\\textbf``),
    ``csv`` (header ``label,<radius>,...``, full-precision values, no marking), or ``text``
    (aligned columns for a terminal, the best marked ``*``). Labels are
    written verbatim (escape LaTeX yourself; the reference's are ``$\\sigma = 0.25$`` and
    ``&sigma; = 0.25``).

    ``best``: which rows are marked at each radius, compared on the unrounded accuracies:
    ``first`` (the reference: the first row of those with the highest accuracy, even when
    several tie or all are 0), ``all`` (every row with the highest accuracy) or ``none``.

    ``envelope``: add a last row ``envelope_label`` with the best accuracy over the rows at
    each radius (the "best over classifiers" curve of the papers); it is never marked, and
    the LaTeX table sets it off with a ``\\midrule``.

    ``samples``: one ``(mean, total)`` forward passes per row (see :func:`forward_passes`; None
    where unknown, shown ``-``), added as two last columns :data:`SAMPLES_HEADS` (mean with
    one decimal; csv: ``samples_per_input`` and ``samples_total`` at full precision, empty
    where unknown); the envelope row has none. Without it the tables are the reference's.

    ``norm``: the threat model of the radii. ``l2`` heads the columns ``r = R`` (the
    reference's); ``linf`` heads them ``r∞ = R`` (LaTeX ``$r_\\infty = R$``; csv: first cell
    ``label (linf radius)``).
    """
    parts = _table_parts(
        rows,
        radii,
        fmt,
        envelope=envelope,
        envelope_label=envelope_label,
        best=best,
        decimals=decimals,
        samples=samples,
        norm=norm,
    )
    return _TABLE_WRITERS[fmt](parts)


@dataclass(frozen=True)
class _TableParts:
    """What every format of :func:`format_table` writes, checked and computed once."""

    labels: list[str]
    acc: np.ndarray  #: (rows, radii) accuracies
    env: np.ndarray | None  #: the envelope row's accuracies, or None
    envelope_label: str
    marked: np.ndarray  #: (rows, radii) bool: the rows marked best at each radius
    heads: list[str]  #: the radii as printed
    norm: str
    rsym: str  #: the radius symbol of the heads (markdown, text)
    rtex: str  #: the radius symbol in LaTeX
    num: str  #: the format of an accuracy
    samples: list | None  #: ``(mean, total)`` or None per row, or None: no cost columns
    cost: list[tuple[str, str]] | None  #: the cost columns' texts per row
    env_cost: list[str]  #: the envelope row's cost cells (none without cost columns)


def _table_parts(
    rows,
    radii,
    fmt: str,
    *,
    envelope: bool,
    envelope_label: str,
    best: str,
    decimals: int,
    samples,
    norm: str,
) -> _TableParts:
    """The arguments of :func:`format_table`, checked (one-line errors, in this order), and
    the numbers and texts of the table."""
    if fmt not in TABLE_FORMATS:
        raise SmoothCertError(
            f"unknown table format {fmt!r}; choose one of {', '.join(TABLE_FORMATS)}"
        )
    if best not in ("first", "all", "none"):
        raise SmoothCertError(f"best must be 'first', 'all' or 'none', got {best!r}")
    radii = [float(r) for r in _radii_array(radii).reshape(-1)]
    if not radii:
        raise SmoothCertError("no radii to tabulate")
    labels = [str(label) for label, _ in rows]
    acc = np.array(
        [np.asarray(a, dtype=np.float64).reshape(-1) for _, a in rows], dtype=np.float64
    ).reshape(len(rows), -1)
    if acc.shape[1] != len(radii) and rows:
        raise SmoothCertError(
            f"each row needs {len(radii)} accuracies (one per radius), got {acc.shape[1]}"
        )
    if envelope and not rows:
        raise SmoothCertError("the envelope row needs at least one row")
    env = acc.max(axis=0) if envelope else None
    marked = _best_mask(acc, best)
    heads = [format_radius(r) for r in radii]
    if norm not in ("l2", "linf"):
        raise SmoothCertError(f"norm must be 'l2' or 'linf', got {norm!r}")
    rsym, rtex = ("r", "r") if norm == "l2" else ("r∞", r"r_\infty")
    num = f"{{:.{int(decimals)}f}}"
    if samples is not None:
        samples = list(samples)
        if len(samples) != len(rows):
            raise SmoothCertError(
                f"samples needs one entry per row ({len(rows)}), got {len(samples)}"
            )
    # the cost columns: (mean, total) texts per row, the envelope's empty
    cost = (
        None
        if samples is None
        else [("-", "-") if c is None else (f"{float(c[0]):.1f}", f"{int(c[1])}") for c in samples]
    )
    env_cost = ["-", "-"] if cost is not None else []
    return _TableParts(
        labels,
        acc,
        env,
        envelope_label,
        marked,
        heads,
        norm,
        rsym,
        rtex,
        num,
        samples,
        cost,
        env_cost,
    )


def _csv_table(t: _TableParts) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "label" if t.norm == "l2" else "label (linf radius)",
            *t.heads,
            *(["samples_per_input", "samples_total"] if t.cost is not None else []),
        ]
    )
    for i, (label, values) in enumerate(zip(t.labels, t.acc, strict=True)):
        extra = (
            []
            if t.samples is None
            else (
                ["", ""]
                if t.samples[i] is None
                else [repr(float(t.samples[i][0])), str(int(t.samples[i][1]))]
            )
        )
        writer.writerow([label, *(repr(float(v)) for v in values), *extra])
    if t.env is not None:
        writer.writerow(
            [
                t.envelope_label,
                *(repr(float(v)) for v in t.env),
                *(["", ""] if t.cost is not None else []),
            ]
        )
    return out.getvalue()


def _markdown_table(t: _TableParts) -> str:
    out = io.StringIO()
    out.write(
        "|  | "
        + "".join(f"{t.rsym} = {h} |" for h in t.heads)
        + ("".join(f"{h} |" for h in SAMPLES_HEADS) if t.cost is not None else "")
        + "\n"
    )
    out.write("| --- | " + " --- |" * (len(t.heads) + (2 if t.cost is not None else 0)) + "\n")
    for i, (label, values, marks) in enumerate(zip(t.labels, t.acc, t.marked, strict=True)):
        out.write(
            f"<b> {label} </b>| "
            + "".join(
                t.num.format(v) + ("<b>*</b> |" if m else " |")
                for v, m in zip(values, marks, strict=True)
            )
            + ("".join(f"{c} |" for c in t.cost[i]) if t.cost is not None else "")
            + "\n"
        )
    if t.env is not None:
        out.write(
            f"<b> {t.envelope_label} </b>| "
            + "".join(t.num.format(v) + " |" for v in t.env)
            + "".join(f"{c} |" for c in t.env_cost)
            + "\n"
        )
    return out.getvalue()


def _text_table(t: _TableParts) -> str:
    """Aligned plain text for a terminal, the best marked with ``*``."""
    out = io.StringIO()
    body = [
        [
            label,
            *(t.num.format(v) + ("*" if m else " ") for v, m in zip(values, marks, strict=True)),
            *(t.cost[i] if t.cost is not None else ()),
        ]
        for i, (label, values, marks) in enumerate(zip(t.labels, t.acc, t.marked, strict=True))
    ]
    if t.env is not None:
        body.append([t.envelope_label, *(t.num.format(v) + " " for v in t.env), *t.env_cost])
    lines = [
        [
            "",
            *(f"{t.rsym} = {h} " for h in t.heads),
            *(SAMPLES_HEADS if t.cost is not None else ()),
        ],
        *body,
    ]
    widths = [max(len(line[j]) for line in lines) for j in range(len(lines[0]))]
    for i, line in enumerate(lines):
        out.write(
            "  ".join(
                [line[0].ljust(widths[0])]
                + [c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)]
            ).rstrip()
            + "\n"
        )
        if i == 0:
            out.write("-" * (sum(widths) + 2 * (len(widths) - 1)) + "\n")
    return out.getvalue()


def _latex_table(t: _TableParts) -> str:
    out = io.StringIO()
    out.write(
        "".join(f"& ${t.rtex} = {h}$" for h in t.heads)
        + ("".join(f"& {h}" for h in SAMPLES_HEADS) if t.cost is not None else "")
        + "\\\\\n"
    )
    out.write("\\midrule\n")
    for i, (label, values, marks) in enumerate(zip(t.labels, t.acc, t.marked, strict=True)):
        out.write(
            label
            + "".join(
                " & \\textbf{" + t.num.format(v) + "}" if m else " & " + t.num.format(v)
                for v, m in zip(values, marks, strict=True)
            )
            + ("".join(f" & {c}" for c in t.cost[i]) if t.cost is not None else "")
            + "\\\\\n"
        )
    if t.env is not None:
        out.write(
            "\\midrule\n"
            + t.envelope_label
            + "".join(" & " + t.num.format(v) for v in t.env)
            + "".join(f" & {c}" for c in t.env_cost)
            + "\\\\\n"
        )
    return out.getvalue()


_TABLE_WRITERS = {
    "csv": _csv_table,
    "markdown": _markdown_table,
    "text": _text_table,
    "latex": _latex_table,
}


def _default_max_radius(curves: Sequence[tuple[str, ResultsTable]]) -> float:
    top = 0.0
    for _, results in curves:
        r = results.radius[(results.correct == 1) & np.isfinite(results.radius)]
        if r.size:
            top = max(top, float(r.max()))
    if top <= 0:
        return 1.0
    return math.ceil(top / 0.25 - 1e-9) * 0.25


def plot_certified_accuracy(
    curves: Sequence[tuple[str, ResultsTable]],
    path: str | Path,
    max_radius: float | None = None,
    norm_label: str = "l2 radius",
    title: str | None = None,
) -> Path:
    """Plot certified accuracy against radius, one curve per ``(label, results)``.

    Written headless (Agg) as PNG or PDF according to the suffix of ``path``. The curves are
    exact step functions, each in its own colour of the colour-blind-safe palette
    (:mod:`smoothcert.palette`) and its own dash pattern, so that they also read in greyscale;
    the legend sits outside the axes, to the right, where it covers no curve. ``max_radius``
    defaults to the largest certified radius of a correct prediction, rounded up to a multiple
    of 0.25. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".pdf"):
        raise SmoothCertError(f"{path}: plot file must end in .png or .pdf")
    if not curves:
        raise SmoothCertError("nothing to plot: no results given")
    if max_radius is None:
        max_radius = _default_max_radius(curves)
    if not (math.isfinite(max_radius) and max_radius > 0):
        raise SmoothCertError(f"max radius must be a positive number, got {max_radius}")

    from . import palette

    fig = Figure(figsize=(9.6, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, results) in enumerate(curves):
        x, y = certified_accuracy_curve(results, max_radius)
        ax.plot(
            x,
            y,
            drawstyle="steps-post",
            label=str(label),
            linestyle=palette.linestyle(i),
            color=palette.color(i),
            linewidth=2.0 if i < 4 else 1.5,
        )
    ax.set_xlim(0, max_radius)
    ax.set_ylim(0, 1)
    ax.set_xlabel(norm_label, fontsize=14)
    ax.set_ylabel("certified accuracy", fontsize=14)
    ax.tick_params(labelsize=12)
    ax.grid(True, color="0.85", linewidth=0.8)
    # outside the axes (constrained layout makes room): no curve is ever under the legend
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        fontsize=11,
        handlelength=3.5,
    )
    if title:  # above axes and legend (an axes title would run into the legend)
        import textwrap

        fig.suptitle(textwrap.fill(str(title), 90), fontsize=13)
    metadata = {"CreationDate": None} if suffix == ".pdf" else {"Software": None}
    try:
        fig.savefig(path, dpi=200 if suffix == ".png" else None, metadata=metadata)
    except (OSError, ValueError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()
        reason = msg[0] if msg else type(exc).__name__
        raise SmoothCertError(f"{path}: cannot write the plot: {reason}") from None
    return path


_SUFFIXES = {".tsv", ".txt", ".csv", ".dat", ".log", ".out", ".tab"}
_NOISE_DIR = re.compile(r"^noise_(.+)$")
_SIGMA_FILE = re.compile(r"^sigma_(.+)$")


def _strip_suffix(name: str) -> str:
    p = Path(name)
    return p.stem if p.suffix.lower() in _SUFFIXES else name


def default_label(path: str | Path) -> str:
    """A readable label for a results file, from its path.

    The reference's layout ``.../noise_S/{test,train}/sigma_C`` (train noise S, certification
    noise C) gives ``noise_S``, or ``noise_S sigma_C`` when C differs from S, plus ``(train)``
    for the train split; any other path gives its nearest ``noise_*`` folder if there is
    one, else the file name without a ``.tsv``/``.txt``-style suffix.
    """
    parts = Path(path).parts
    name = _strip_suffix(parts[-1]) if parts else str(path)
    if len(parts) >= 3:
        noise, split = _NOISE_DIR.match(parts[-3]), parts[-2]
        sigma = _SIGMA_FILE.match(name)
        if noise and sigma and split in ("test", "train"):
            label = parts[-3]
            if sigma[1] != noise[1]:
                label += f" {name}"
            return label + (" (train)" if split == "train" else "")
    for part in reversed(parts[:-1]):
        if _NOISE_DIR.match(part):
            return part if name in ("", part) else f"{part} {name}"
    return name


def default_labels(paths: Iterable[str | Path]) -> list[str]:
    """:func:`default_label` of each path, made unique by prefixing parent folders."""
    paths = [Path(p) for p in paths]
    labels = [default_label(p) for p in paths]
    for label in set(labels):
        group = [i for i, lab in enumerate(labels) if lab == label]
        if len(group) < 2:
            continue
        distinct = len({paths[i].as_posix() for i in group})
        longest = max(len(paths[i].parts) for i in group)
        for depth in range(1, longest + 1):
            cand = {
                i: Path(*[*paths[i].parts[:-1], _strip_suffix(paths[i].name)][-depth:]).as_posix()
                for i in group
            }
            if len(set(cand.values())) >= distinct:
                break
        seen: dict[str, int] = {}
        for i in group:  # the same file given twice: number the copies
            if list(cand.values()).count(cand[i]) > 1:
                seen[cand[i]] = seen.get(cand[i], 0) + 1
                labels[i] = f"{cand[i]} #{seen[cand[i]]}"
            else:
                labels[i] = cand[i]
    return labels
