"""Choosing the smoothing noise of a model on validation results, and reporting the test result
of the choice only (``smoothcert select``).

Each candidate is a ``certify`` results file (with its ``OUTFILE.config.json``) of one noise
configuration: noise family, k, sigma (sigma0), and the checkpoint it was run with. The files
were run on a **validation** subset of a split (e.g. ``--start 6 --skip 12``); the candidate with
the best validation score is chosen, and only then is its partner **test** file (the same
configuration on images disjoint from the validation ones, e.g. ``--start 0 --skip 12``) read for
the number to report. The test scores of the other candidates are never computed: choosing on
the test images would make the reported number optimistic.

Criterion (the validation score, and the reported test score):

- at a radius R: the certified accuracy at R, the fraction of the file's rows with
  ``correct == 1`` and a certified radius >= R (:func:`smoothcert.analysis.certified_accuracy`,
  what ``analyze`` prints, ``radius_exact`` counted when present and the same fallbacks for files
  of older versions);
- over a range [LO, HI]: the mean certified accuracy over the range, exactly: the integral of the
  certified-accuracy step function r -> acc(r) over [LO, HI] divided by HI - LO (no grid). A row
  correct with counted radius r_i contributes ``clip(r_i - LO, 0, HI - LO) / (HI - LO)``.

Ties: the highest score wins; among candidates tied with it (equal counts at a radius; over a
range, scores equal up to a relative 1e-12 of float rounding) the one given first wins; the tied
files are reported.

Sampling error of the test number (n test images): at a radius, one image is 1/n and the
interval is the exact two-sided Clopper-Pearson interval of the count; over a range the score is
a mean of per-image values in [0, 1], for which the interval is Hoeffding's (distribution-free,
``+- sqrt(log(2 / (1 - confidence)) / (2 n))``, clipped to [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import certified_accuracy, counted_radii, read_results, results_setting
from .errors import SmoothCertError
from .results import config_path, read_config_file

#: the configuration entries that define the smoothed classifier of a results file (and its
#: certificate): a validation file and its test partner must agree on all of them
CLASSIFIER_FIELDS = (
    "dataset",
    "noise",
    "dim",
    "k",
    "sigma",
    "norm",
    "checkpoint_sha256",
    "N0",
    "N",
    "alpha",
    "bilateral",
    "adaptive",
    "certificate",
)
#: the entries of the chosen configuration that the report shows
SHOWN_FIELDS = (
    "noise",
    "k",
    "sigma",
    "sigma0",
    "dim",
    "norm",
    "train_noise",
    "checkpoint",
    "checkpoint_sha256",
    "N0",
    "N",
    "alpha",
    "bilateral",
    "dataset",
    "split",
    "start",
    "skip",
    "max",
)
#: relative tolerance of a tie between two range scores (float rounding of the integral)
RANGE_TIE_RTOL = 1e-12


@dataclass(frozen=True)
class Criterion:
    """The score of a results file: the certified accuracy at ``radius``, or (``lo``, ``hi``)
    the exact mean certified accuracy over [lo, hi]."""

    radius: float | None = None
    lo: float | None = None
    hi: float | None = None

    def __post_init__(self):
        if (self.radius is None) == (self.lo is None and self.hi is None):
            raise SmoothCertError("give either a radius or a range of radii (LO:HI), not both")
        if self.radius is not None:
            if not (math.isfinite(self.radius) and self.radius >= 0):
                raise SmoothCertError(f"the radius must be finite and >= 0, got {self.radius}")
            return
        lo, hi = self.lo, self.hi
        if (
            lo is None
            or hi is None
            or not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi)
        ):
            raise SmoothCertError(
                f"the range of radii must be LO:HI with 0 <= LO < HI, both finite, got {lo}:{hi}"
            )

    @property
    def is_range(self) -> bool:
        return self.radius is None

    def score(self, table) -> float:
        """The score of a :class:`~smoothcert.analysis.ResultsTable`."""
        if self.is_range:
            return mean_certified_accuracy(table, self.lo, self.hi)
        return float(certified_accuracy(table, self.radius))

    def describe(self, norm: str = "l2") -> str:
        if self.is_range:
            return (
                f"mean certified accuracy over {norm} radii [{self.lo:g}, {self.hi:g}] "
                "(exact integral of the certified-accuracy step function / width)"
            )
        return (
            f"certified accuracy at {norm} radius {self.radius:g} (fraction of the images "
            "with correct == 1 and radius >= R)"
        )

    def to_dict(self) -> dict:
        if self.is_range:
            return {
                "kind": "range",
                "lo": self.lo,
                "hi": self.hi,
                "definition": "integral of the certified-accuracy step function over "
                "[lo, hi] / (hi - lo)",
            }
        return {
            "kind": "radius",
            "radius": self.radius,
            "definition": "fraction of rows with correct == 1 and radius >= radius",
        }


def mean_certified_accuracy(table, lo: float, hi: float) -> float:
    """The exact mean of the certified accuracy over radii [lo, hi] of a results table: the
    integral of r -> acc(r) over [lo, hi] divided by hi - lo, i.e. the mean over rows of
    ``correct * clip(r_i - lo, 0, hi - lo) / (hi - lo)`` with r_i the counted radius
    (:func:`smoothcert.analysis.counted_radii`: never more than the run certified)."""
    Criterion(lo=lo, hi=hi)  # checks the range
    n = len(table)
    if n == 0:
        certified_accuracy(table, lo)  # raises the error naming the file
    good = table.correct == 1
    width = hi - lo
    part = np.clip(counted_radii(table)[good] - lo, 0.0, width) / width
    return math.fsum(part.tolist()) / n


@dataclass(eq=False)
class Candidate:
    """One results file: its path, configuration, rows and score."""

    path: str
    config: dict
    table: object = field(repr=False)
    score: float = math.nan

    @property
    def n(self) -> int:
        return len(self.table)

    @property
    def indices(self) -> frozenset:
        return frozenset(self.table.idx.tolist())


def read_candidate(path) -> Candidate:
    """A certify results file with its configuration (one-line error when it has none)."""
    path = str(path)
    table = read_results(path)  # refuses a repeated idx, a damaged row, ...
    if not config_path(path).is_file():
        raise SmoothCertError(
            f"{path} has no configuration {Path(path).name}.config.json: "
            "its noise, norm and images are unknown"
        )
    config = read_config_file(config_path(path))
    config["norm"] = results_setting(path)["norm"]  # checked (l2 when absent, as analyze)
    if len(table) == 0:
        raise SmoothCertError(f"{path} has no result rows")
    return Candidate(path, config, table)


def _pool(c: Candidate) -> tuple:
    return c.config.get("dataset"), c.config.get("split")


def _check_same(cands: list[Candidate], what: str) -> None:
    """Every file of ``cands`` has the norm, dataset, split and index set of the first."""
    first = cands[0]
    for c in cands[1:]:
        for key in ("norm", "dataset", "split"):
            if c.config.get(key) != first.config.get(key):
                raise SmoothCertError(
                    f"{what} files differ in {key}: {first.path} has "
                    f"{first.config.get(key)!r}, {c.path} "
                    f"{c.config.get(key)!r}; compare files of one {key}"
                )
        if c.indices != first.indices:
            only = sorted(c.indices ^ first.indices)
            raise SmoothCertError(
                f"{what} files {first.path} and {c.path} hold different "
                f"images ({len(only)} idx in one only, e.g. {only[0]}); a "
                "fair comparison needs the same images"
            )


def _classifier(c: Candidate) -> dict:
    return {key: c.config.get(key) for key in CLASSIFIER_FIELDS}


def pair_test_files(val: list[Candidate], test: list[Candidate]) -> list[Candidate]:
    """The test partner of each validation file (same :data:`CLASSIFIER_FIELDS`), in the order
    of ``val``: exactly one each, every test file the partner of one, and the test images
    disjoint from the validation images when both come from the same split."""
    partners: list[Candidate] = []
    used: dict[int, str] = {}
    for v in val:
        found = [j for j, t in enumerate(test) if _classifier(t) == _classifier(v)]
        if not found:
            raise SmoothCertError(
                f"no test file has the configuration of {v.path} (the same "
                f"{', '.join(CLASSIFIER_FIELDS)})"
            )
        if len(found) > 1:
            raise SmoothCertError(
                f"test files {test[found[0]].path} and {test[found[1]].path} "
                f"both have the configuration of {v.path}; give one"
            )
        j = found[0]
        if j in used:
            raise SmoothCertError(
                f"validation files {used[j]} and {v.path} have the same "
                f"configuration (test partner {test[j].path}); give one"
            )
        used[j] = v.path
        t = test[j]
        if _pool(t) == _pool(v):
            shared = sorted(t.indices & v.indices)
            if shared:
                raise SmoothCertError(
                    f"test file {t.path} shares {len(shared)} image(s) with "
                    f"validation file {v.path} (idx {shared[0]}, ...): the "
                    "test images must be held apart from the validation "
                    "images (e.g. --start 0 / --start 6 with --skip 12)"
                )
        partners.append(t)
    extra = [t.path for j, t in enumerate(test) if j not in used]
    if extra:
        raise SmoothCertError(f"test file {extra[0]} has the configuration of no validation file")
    return partners


def sampling_interval(
    score: float, n: int, count: int | None, confidence: float = 0.95
) -> tuple[float, float, str]:
    """``(low, high, method)``: a ``confidence`` interval of a certified accuracy measured on n
    images: Clopper-Pearson of ``count`` successes when given (a single radius), else
    Hoeffding's for a mean of values in [0, 1] (a range of radii)."""
    if count is not None:
        from scipy.stats import binomtest

        ci = binomtest(int(count), int(n)).proportion_ci(
            confidence_level=confidence, method="exact"
        )
        return float(ci.low), float(ci.high), "clopper-pearson"
    eps = math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * n))
    return max(0.0, score - eps), min(1.0, score + eps), "hoeffding"


def _num(value) -> str:
    """A number of a configuration file as text (4 significant digits), anything else as is."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}"
    return str(value)


@dataclass
class Selection:
    """The result of :func:`select` (``to_dict`` for JSON, ``format`` for text)."""

    criterion: Criterion
    norm: str
    chosen: Candidate
    candidates: list[Candidate]
    ties: list[str]
    test: Candidate | None = None
    test_score: float | None = None
    confidence: float = 0.95

    def _count(self, c: Candidate, score: float) -> int | None:
        return None if self.criterion.is_range else int(round(score * c.n))

    def test_result(self) -> dict | None:
        if self.test is None:
            return None
        count = self._count(self.test, self.test_score)
        low, high, method = sampling_interval(self.test_score, self.test.n, count, self.confidence)
        return {
            "file": self.test.path,
            "score": self.test_score,
            "n": self.test.n,
            "count": count,
            "one_image": 1.0 / self.test.n,
            "ci": [low, high],
            "ci_method": method,
            "confidence": self.confidence,
        }

    def to_dict(self) -> dict:
        c = self.chosen
        return {
            "criterion": self.criterion.to_dict(),
            "norm": self.norm,
            "chosen": {"file": c.path, "config": {k: c.config.get(k) for k in SHOWN_FIELDS}},
            "validation": {
                "score": c.score,
                "n": c.n,
                "count": self._count(c, c.score),
                "ties": self.ties,
                "tie_rule": "highest score; among ties the file given first",
                "scores": [{"file": k.path, "score": k.score} for k in self.candidates],
            },
            "test": self.test_result(),
        }

    def format(self) -> str:
        c, crit = self.chosen, self.criterion
        cfg = c.config
        sigma0 = "" if cfg.get("sigma0") is None else f" (sigma0 {_num(cfg['sigma0'])})"
        tn = cfg.get("train_noise")
        trained = (
            "training noise not recorded"
            if not isinstance(tn, dict)
            else (
                f"trained with {tn.get('noise')} k {_num(tn.get('k'))} sigma "
                f"{_num(tn.get('sigma'))}"
            )
        )
        lines = [
            f"# criterion: {crit.describe(self.norm)}",
            f"# {len(self.candidates)} candidates scored on the same {c.n} validation "
            "images; ties: the file given first",
            "validation scores:",
        ]
        width = max(len(k.path) for k in self.candidates)
        for k in self.candidates:
            mark = "  <- chosen" if k is c else ""
            lines.append(f"  {k.path:<{width}}  {k.score:.4f}{mark}")
        lines.append(
            f"chosen: {c.path}: noise {cfg.get('noise')} k {_num(cfg.get('k'))} "
            f"sigma {_num(cfg.get('sigma'))}{sigma0}, checkpoint {cfg.get('checkpoint')} "
            f"(sha256 {str(cfg.get('checkpoint_sha256'))[:12]}, {trained})"
        )
        count = self._count(c, c.score)
        lines.append(
            f"validation: {c.score:.4f}"
            + (f" ({count}/{c.n} images)" if count is not None else f" ({c.n} images)")
        )
        if len(self.ties) > 1:
            lines.append(
                f"tied with the chosen file (first given wins): {', '.join(self.ties[1:])}"
            )
        t = self.test_result()
        if t is None:
            lines.append(
                "test: no --test files given (the validation score of a chosen "
                "configuration is optimistic; report a test score)"
            )
        else:
            what = f"{t['count']}/{t['n']} images" if t["count"] is not None else f"{t['n']} images"
            lines.append(
                f"test: {t['score']:.4f} ({what}; one image = {t['one_image']:.4f}; "
                f"{100 * t['confidence']:g}% {t['ci_method']} interval "
                f"[{t['ci'][0]:.4f}, {t['ci'][1]:.4f}]) from {t['file']}"
            )
        return "\n".join(lines) + "\n"


def select(
    val_files,
    *,
    radius: float | None = None,
    radii: tuple[float, float] | None = None,
    test_files=None,
    confidence: float = 0.95,
) -> Selection:
    """Choose among the validation results files ``val_files`` the one with the best score
    (:class:`Criterion` of ``radius``, or of the range ``radii = (lo, hi)``), ties to the file
    given first, and score its partner among ``test_files`` (if any) only.

    Refused with a one-line :class:`SmoothCertError`: a file without configuration, a repeated
    idx, validation files that mix norms, data sets, splits or images; with test files, a
    validation file without exactly one test partner (:func:`pair_test_files`), test files on
    other images than each other, test images shared with the validation images."""
    if radii is not None:
        if len(radii) != 2:
            raise SmoothCertError(f"a range of radii is (LO, HI), got {radii}")
        criterion = Criterion(lo=float(radii[0]), hi=float(radii[1]))
    else:
        criterion = Criterion(radius=None if radius is None else float(radius))
    if not 0 < confidence < 1:
        raise SmoothCertError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    val_files = [str(p) for p in val_files]
    test_files = [str(p) for p in (test_files or [])]
    if not val_files:
        raise SmoothCertError("no validation files")
    seen: dict[Path, str] = {}
    for role, paths in (("validation", val_files), ("test", test_files)):
        for p in paths:
            key = Path(p).resolve()
            if key in seen:
                how = "twice" if seen[key] == role else "as validation and as test file"
                raise SmoothCertError(f"{p} is given {how}")
            seen[key] = role
    val = [read_candidate(p) for p in val_files]
    _check_same(val, "validation")
    test = [read_candidate(p) for p in test_files]
    partners = None
    if test:
        if test[0].config.get("norm") != val[0].config.get("norm"):
            raise SmoothCertError(
                f"validation file {val[0].path} has {val[0].config['norm']} "
                f"radii, test file {test[0].path} "
                f"{test[0].config['norm']}"
            )
        partners = pair_test_files(val, test)  # disjoint from the validation images
        _check_same(test, "test")  # and one test set, whichever configuration is chosen

    for c in val:
        c.score = criterion.score(c.table)
    if criterion.is_range:
        best = max(c.score for c in val)
        tied = [
            c for c in val if math.isclose(c.score, best, rel_tol=RANGE_TIE_RTOL, abs_tol=1e-15)
        ]
    else:  # counts: exact
        counts = [int(round(c.score * c.n)) for c in val]
        tied = [c for c, k in zip(val, counts, strict=True) if k == max(counts)]
    chosen = tied[0]
    selection = Selection(
        criterion=criterion,
        norm=val[0].config["norm"],
        chosen=chosen,
        candidates=val,
        ties=[c.path for c in tied],
        confidence=confidence,
    )
    if partners is not None:  # the test score of the chosen configuration only
        t = partners[next(i for i, c in enumerate(val) if c is chosen)]
        t.score = criterion.score(t.table)
        selection.test, selection.test_score = t, t.score
    return selection


__all__ = [
    "CLASSIFIER_FIELDS",
    "Criterion",
    "Candidate",
    "Selection",
    "mean_certified_accuracy",
    "pair_test_files",
    "read_candidate",
    "sampling_interval",
    "select",
]
