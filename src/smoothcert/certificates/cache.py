"""Content-addressed on-disk cache of certificate tables, checked before it is trusted.

A table is stored as ``<sha256 of its parameters>.npz`` under ``$SMOOTHCERT_CACHE`` (or the user
cache directory, e.g. ``~/.cache/smoothcert``), holding the radii, the thresholds (their sound
monotone envelope), the parameters, small metadata (``info``) and a sha256 digest of all of them.
Tables are also memoised in memory.

Trust model. A cache file is a claim that someone computed these thresholds; a too-low
threshold certifies a radius that was never proved, so a file is checked on every load (once
per process) and rebuilt, with a one-line warning naming the file and the reason, when any
check fails:

* the digest (catches corruption, truncation and naive edits; a partial file never loads);
* plausibility: radii finite, strictly increasing from 0; thresholds >= 1/2 and non-decreasing
  in r (a single lowered value breaks this: the monotone envelope would spread it to every
  smaller radius), within the range the builders produce; ``info`` consistent with the
  parameters;
* an independent check of the numbers (``check`` of :func:`cached_table`): a quadrature table is
  spot-checked against the exact engine at two radii, one of them drawn at random on each
  load; a Monte Carlo table at 32 radii against a DKW lower bound of p*(r) from a small pilot
  sample (gross edits only: thresholds lowered by more than ~0.06 in p at d <= 104, ~0.3 at
  d = 3072; no pilot above d ~ 10,000, where sampling it would cost seconds).

What remains trusted: someone who can write the cache directory and recomputes the digest can
still lower a few quadrature thresholds at radii the spot-check does not draw (the monotonicity
check bounds each such edit to one grid step, 0.006 sigma) or lower a Monte Carlo table by
less than the pilot's resolution. A cache directory is therefore trusted to the level of its
file system's write permissions: a shared ``$SMOOTHCERT_CACHE`` on a cluster file system must
be writable only by the people whose certificates it serves (or use a private cache, or
``cache=False``). Builders are serialised by a lock file ``<key>.lock`` (``fcntl.flock``), so
two cold runs build a table once; writes are atomic (``os.replace``), so no reader ever sees a
partial file. Where locks are not available (e.g. Windows) two runs may both build; both then
write the same table atomically.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import tempfile
import warnings
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, atomic writes only
    fcntl = None

#: part of every key: files written by an older format (no digest, no checks) are never read
FORMAT_VERSION = 2
#: a table's numerical margin above this is implausible (the builders' are <= 1e-4)
MAX_MARGIN = 1e-3

_MEMORY: dict[str, tuple] = {}


class UntrustedTable(ValueError):
    """A cache file that must not be used (the message is the reason)."""


def cache_dir() -> Path:
    env = os.environ.get("SMOOTHCERT_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("smoothcert"))


def _canonical(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def table_key(params: dict) -> str:
    return hashlib.sha256(
        _canonical({"cache_format": FORMAT_VERSION, **params}).encode()
    ).hexdigest()[:32]


def table_digest(params: dict, radii, thresholds, info: dict) -> str:
    """sha256 of everything a table file holds (format, parameters, info and both arrays)."""
    h = hashlib.sha256()
    for part in (str(FORMAT_VERSION), _canonical(params), json.dumps(info, sort_keys=True)):
        h.update(part.encode())
        h.update(b"\0")
    for arr in (radii, thresholds):
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return h.hexdigest()


def monotone_envelope(thresholds) -> np.ndarray:
    """min over j >= i of t_j, with NaN (not computed) as +inf: still an upper bound of p*(r_i)
    as p* is non-decreasing (balls are nested), and non-decreasing itself."""
    t = np.nan_to_num(np.asarray(thresholds, dtype=float), nan=np.inf)
    return np.minimum.accumulate(t[::-1])[::-1]


def check_plausible(radii: np.ndarray, thresholds: np.ndarray, info) -> None:
    """Shape and range checks every table passes (raises :class:`UntrustedTable`)."""
    if radii.ndim != 1 or thresholds.shape != radii.shape or radii.size < 2:
        raise UntrustedTable(f"array shapes {radii.shape} and {thresholds.shape}")
    if not np.all(np.isfinite(radii)) or radii[0] != 0.0 or not np.all(np.diff(radii) > 0):
        raise UntrustedTable("radii are not finite and strictly increasing from 0")
    if np.any(np.isnan(thresholds)) or not np.all(thresholds >= 0.5):
        bad = thresholds[~(thresholds >= 0.5)][0]
        raise UntrustedTable(f"threshold {float(bad)!r} below 1/2 (p*(r) >= 1/2)")
    if not np.all(np.diff(thresholds) >= 0):
        i = int(np.argmax(np.diff(thresholds) < 0))
        t0, t1, r0 = float(thresholds[i]), float(thresholds[i + 1]), float(radii[i])
        raise UntrustedTable(f"thresholds decrease in r ({t0!r} at r = {r0!r}, then {t1!r})")
    if not isinstance(info, dict):
        raise UntrustedTable("info is not a dictionary")


def _read(path: Path, params: dict, check) -> tuple:
    """The table stored at ``path``, or :class:`UntrustedTable` / OSError saying why not."""
    fields = ("params", "radii", "thresholds", "info", "digest")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [name for name in fields if name not in f.files]
            if missing:
                raise UntrustedTable(f"no {missing[0]!r} field (older format?)")
            stored = {name: f[name] for name in fields}
    except (FileNotFoundError, UntrustedTable):
        raise
    except Exception as exc:  # not an npz, truncated (BadZipFile, EOFError), pickled objects
        raise UntrustedTable(f"unreadable ({type(exc).__name__}: {exc})") from None
    try:
        if json.loads(str(stored["params"])) != json.loads(_canonical(params)):
            raise UntrustedTable("parameters differ from the ones its name stands for")
        info = json.loads(str(stored["info"]))
    except json.JSONDecodeError:
        raise UntrustedTable("parameters or info are not JSON") from None
    radii, thresholds = stored["radii"], stored["thresholds"]
    if radii.dtype != np.float64 or thresholds.dtype != np.float64:
        raise UntrustedTable(f"arrays of type {radii.dtype}/{thresholds.dtype}, not float64")
    if str(stored["digest"]) != table_digest(params, radii, thresholds, info):
        raise UntrustedTable("content digest mismatch (edited or corrupted)")
    check_plausible(radii, thresholds, info)
    if check is not None:
        try:
            check(radii, thresholds, info)
        except UntrustedTable:
            raise
        except Exception as exc:  # the check itself failed: do not trust what it could not see
            raise UntrustedTable(f"check failed ({type(exc).__name__}: {exc})") from None
    return radii.copy(), thresholds.copy(), info


@contextlib.contextmanager
def _build_lock(path: Path):
    """Exclusive lock on ``<key>.lock`` next to the table, held while building it."""
    if fcntl is None:
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # read-only cache: build without a lock (nothing will be written)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def cached_table(params: dict, build, use_cache: bool = True, check=None):
    """Return ``(radii, thresholds, info)`` for ``params``, building it with ``build()`` once.

    The thresholds are returned (and stored) as their monotone envelope. ``check(radii,
    thresholds, info)`` is an independent test of a stored table's numbers (see
    :func:`check_quadrature_table` and :func:`check_monte_carlo_table`), run when the table is
    read from disk; it raises :class:`UntrustedTable` to have the file rebuilt."""
    key = table_key(params)
    if use_cache and key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"{key}.npz"
    if not use_cache:
        return _finish(build())
    reason = None
    try:
        result = _read(path, params, check)
    except FileNotFoundError:
        result = None
    except (UntrustedTable, OSError) as exc:
        result, reason = None, str(exc)
    if result is None:
        with _build_lock(path):
            # another process may have built (or repaired) the table while we waited
            try:
                result = _read(path, params, check)
            except FileNotFoundError:
                pass
            except (UntrustedTable, OSError) as exc:
                reason = str(exc)
            if result is None:
                if reason is not None:  # one line (no source line under it)
                    warnings.warn_explicit(
                        f"ignoring certificate cache file {path}: {reason}; rebuilding it",
                        UserWarning,
                        "smoothcert",
                        0,
                    )
                result = _finish(build())
                _write(path, params, result)
    _MEMORY[key] = result
    return result


def _finish(table) -> tuple:
    radii, thresholds, info = table
    return np.asarray(radii, float), monotone_envelope(thresholds), dict(info)


def _write(path: Path, params: dict, result: tuple) -> None:
    radii, thresholds, info = result
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                radii=radii,
                thresholds=thresholds,
                params=_canonical(params),
                info=json.dumps(info),
                digest=table_digest(params, radii, thresholds, info),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        warnings.warn(f"could not write certificate cache {path}: {exc}", stacklevel=3)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# ----------------------------------------------------------------------------- number checks
def _margin(info: dict, name: str) -> float:
    m = info.get(name, 0.0)
    if not isinstance(m, (int, float)) or not 0 <= m <= MAX_MARGIN:
        raise UntrustedTable(f"implausible {name} {m!r}")
    return float(m)


def check_quadrature_table(engine, n_random: int = 1):
    """A ``check`` for quadrature tables: stored thresholds at a few radii (where p* is about
    0.9, and ``n_random`` radii drawn at random among those with a threshold < 1) must not be below
    the exact engine's p*(r) minus the table's numerical margin; every threshold must be at
    most 1 + margin (or +inf: not computed). One engine call: 10-50 ms for d >= 3 (the median
    solve), 0.3-0.5 s for d <= 2 (whose tables take 3-30 s to build)."""

    def check(radii, thresholds, info):
        margin = _margin(info, "numerical_margin")
        _margin(info, "exact_margin")
        finite = np.isfinite(thresholds)
        if np.any(thresholds[finite] > 1 + margin + 1e-12):
            raise UntrustedTable(f"a threshold above 1 + margin ({1 + margin!r})")
        useful = 1 + np.flatnonzero(thresholds[1:] < 1.0)  # radii > 0 that p < 1 can certify
        if useful.size == 0:
            return  # certifies nothing
        picks = [useful[np.argmin(np.abs(thresholds[useful] - 0.9))]]
        rng = np.random.default_rng(secrets.randbits(64))
        picks += list(rng.choice(useful, size=min(n_random, useful.size), replace=False))
        idx = np.unique(picks)
        exact = np.asarray(engine.threshold(radii[idx]), dtype=float)
        bad = np.flatnonzero(thresholds[idx] < exact - margin)
        if bad.size:
            i = idx[bad[0]]
            t, r, e = float(thresholds[i]), float(radii[i]), float(exact[bad[0]])
            raise UntrustedTable(f"threshold {t!r} at r = {r!r} is below the exact engine's {e!r}")

    return check


#: probability that the pilot check rejects a sound Monte Carlo table
PILOT_FALSE_ALARM = 1e-6
#: pilot size: about this many coordinates drawn (~30 ms), at most 10,000 samples; no pilot
#: when that is fewer than 100 samples (d > 10,485)
PILOT_BUDGET = 1 << 20
#: radii of a Monte Carlo table checked against the pilot (evenly spread over the grid)
PILOT_RADII = 32


def check_monte_carlo_table(noise, norm: str, params: dict):
    """A ``check`` for Monte Carlo tables: ``info`` matches the parameters, every threshold is
    at most 1 + 2 eps (eps the table's DKW half-width) or +inf, and, at PILOT_RADII radii spread
    over the grid, not below a lower bound of p*(r) = G(-median) from a pilot sample of its
    own seed (DKW at level PILOT_FALSE_ALARM / PILOT_RADII: with the band eps', the median is
    <= ell_(ceil(m (1/2 + eps'))), so p*(r) >= G_hat(-ell_(that)) - eps'). eps' is 0.03 at
    d <= 104 (10,000 samples) and 0.16 at d = 3072 (341 samples)."""
    import torch

    from .montecarlo import dkw_epsilon

    def check(radii, thresholds, info):
        for name in ("samples", "seed", "n_radii"):
            if info.get(name) != params[name]:
                raise UntrustedTable(
                    f"info {name} = {info.get(name)!r}, the parameters say {params[name]!r}"
                )
        eps = dkw_epsilon(params["samples"], params["failure_prob"] / params["n_radii"])
        finite = np.isfinite(thresholds)
        if np.any(thresholds[finite] > 1 + 2 * eps):
            raise UntrustedTable(f"a threshold above 1 + 2 eps ({1 + 2 * eps!r})")
        unit = noise.with_sigma(1.0)
        m = min(10_000, PILOT_BUDGET // unit.dim)
        if m < 100:
            return  # too costly to sample at this dimension
        idx = np.unique(np.linspace(1, radii.size - 1, PILOT_RADII).round().astype(int))
        seed = int(table_key({"pilot": params})[:15], 16)
        stats = unit.sample_stats(m, generator=torch.Generator().manual_seed(seed))
        eps_p = dkw_epsilon(m, PILOT_FALSE_ALARM / idx.size)
        j = math.ceil(m * (0.5 + eps_p))
        for r, t in zip(radii[idx], thresholds[idx], strict=True):
            ell = unit.log_ratio_from_stats(stats, float(r), norm).cpu().numpy()
            upper_median = np.partition(ell, j - 1)[j - 1]
            lower = np.count_nonzero(ell <= -upper_median) / m - eps_p
            if t < lower:
                raise UntrustedTable(
                    f"threshold {float(t)!r} at r = {float(r)!r} is below a "
                    f"pilot lower bound {lower:.4f} of p*(r)"
                )

    return check
