"""Certificates: from a lower bound p of p_A to a certified radius, for any noise and norm.

The certificate of the paper (eq. 5 with F = [0,1] functions) does not depend on the input, so
it is computed once per (noise family, d, k, norm) at sigma = 1, cached on disk, and scaled by
sigma (every family is scale-homogeneous). Engines:

==================  =======================================  ====================  ===========
noise               engine                                   failure probability   method
==================  =======================================  ====================  ===========
gaussian, or k = 0  Cohen's closed form sigma Phi^-1(p)      0                     closed-form
l2-family           exact 1-D quadrature (:mod:`.exact_l2`;  0 (numerical margin)  quadrature
                    roots of ell in d = 1)
linf-mixed/-pure    Monte Carlo + DKW band (:mod:`.mc`)      ``failure_prob``      monte-carlo
==================  =======================================  ====================  ===========

A table certificate stores radii r_i and upper bounds t_i of the threshold p*(r_i) (the smallest
p_A that certifies r_i); the lookup R(p) = max{r_i : t_i < p} rounds toward the safe side. The
failure probability of a Monte Carlo table is shared by every certificate made with it; add it
to the per-input alpha of the p_A bound (union bound), as :meth:`Certificate.describe` states.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special  # scipy.optimize and .stats where used: fast start-up

from ..errors import SmoothCertError
from ..noises import Gaussian, L2Family, Noise
from ..noises.base import check_norm
from .cache import cached_table, check_monte_carlo_table, check_quadrature_table
from .exact_l2 import L2FamilyLine, L2FamilyQuadrature
from .montecarlo import dkw_threshold, dkw_thresholds, dkw_value

ENGINE_VERSION = 2
DEFAULT_SAMPLES = 1_000_000
DEFAULT_FAILURE_PROB = 1e-3


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        return np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise SmoothCertError(f"{name} must be a number or an array of numbers, got {x!r}") \
            from None


def check_probability(p, name: str = "p") -> np.ndarray:
    arr = _as_float_array(p, name)
    if arr.size == 0:
        raise SmoothCertError(f"{name} is empty")
    if not np.all(np.isfinite(arr)) or np.any((arr <= 0) | (arr >= 1)):
        bad = arr[~(np.isfinite(arr) & (arr > 0) & (arr < 1))].ravel()[0]
        raise SmoothCertError(f"{name} must lie strictly between 0 and 1, got {bad}")
    return arr


def check_radius(r, name: str = "radius") -> np.ndarray:
    arr = _as_float_array(r, name)
    if arr.size == 0:
        raise SmoothCertError(f"{name} is empty")
    if not np.all(arr >= 0):  # negative or NaN (+inf is allowed: never certified)
        bad = arr[~(arr >= 0)].ravel()[0]
        raise SmoothCertError(f"{name} must be a number >= 0, got {bad}")
    return arr


def _scalar_or_array(x: np.ndarray, like):
    return float(x) if np.ndim(like) == 0 else x


class Certificate:
    """Certified radius of a noise against an l_p threat model (p = 2 or infinity)."""

    method = "abstract"

    def __init__(self, noise: Noise, norm: str, failure_prob: float = 0.0):
        self.noise, self.norm, self.failure_prob = noise, check_norm(norm), float(failure_prob)

    # -- to be provided ---------------------------------------------------------------------
    def radius(self, p):
        """Certified radius for a lower bound ``p`` of p_A (0 where nothing is certified)."""
        raise NotImplementedError

    def threshold(self, r):
        """An upper bound of the smallest p_A that certifies radius ``r``."""
        raise NotImplementedError

    def value(self, p: float, r: float) -> float:
        """Lower bound V(p, r) of min over the ball of the smoothed score (eq. 5)."""
        raise SmoothCertError(f"the {self.method} certificate gives radii, not bound values")

    # -- derived ------------------------------------------------------------------------------
    def certifies(self, p: float, r: float) -> bool:
        """True when a p_A lower bound ``p`` certifies radius ``r`` (Algorithm 2's question)."""
        if np.ndim(p) or np.ndim(r):
            raise SmoothCertError("certifies takes one p and one radius (numbers)")
        p = float(check_probability(p))
        r = float(check_radius(r))
        if not math.isfinite(r):
            raise SmoothCertError(f"radius must be a finite number >= 0, got {r}")
        return bool(p > self.threshold(r))

    def bilateral_radius(self, p_a: float, p_b: float) -> float:
        """Radius of the multi-class bilateral certificate of appendix D, from a lower bound
        ``p_a`` of the top class and an upper bound ``p_b`` of the runner-up: the largest r with
        V(p_a, r) > 1 - V(1 - p_b, r). Never below the binary radius."""
        check_probability(p_a, "p_a")
        check_probability(p_b, "p_b")
        binary = self.radius(p_a)
        if p_b >= p_a:
            return binary

        def margin(r):
            return self.value(p_a, r) + self.value(1 - p_b, r) - 1

        hi = max(binary, 1e-6 * self.noise.sigma)
        while margin(hi) > 0:
            hi *= 2
            if hi > 1e6 * self.noise.sigma:
                break
        if margin(0.0) <= 0:
            return binary
        from scipy import optimize

        r = optimize.brentq(margin, 0.0, hi, xtol=1e-12 * self.noise.sigma, rtol=1e-10)
        return max(binary, r * (1 - 1e-9))

    def describe(self) -> dict:
        """Everything that defines this certificate, for result files and ``--json``."""
        return {**self.noise.params(), "norm": self.norm, "method": self.method,
                "failure_prob": self.failure_prob}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.noise!r}, norm={self.norm!r}, method={self.method})"


_EPS = 2.0**-52  # one unit in the last place of 1.0


def _round_down(x, rel):
    """x moved toward -inf by at least ``rel * |x|`` (covers a relative error <= rel of x)."""
    x = np.asarray(x, dtype=float)
    return np.nextafter(x - np.abs(x) * rel, -np.inf)


def _round_up(x, rel):
    """x moved toward +inf by at least ``rel * |x|``."""
    x = np.asarray(x, dtype=float)
    return np.nextafter(x + np.abs(x) * rel, np.inf)


class GaussianCertificate(Certificate):
    """Corollary 1: R = sigma Phi^-1(p) for l2; sigma Phi^-1(p) / sqrt(d) for l-inf (Theorem 3).
    Exact; also used for the l2 family with k = 0, which is the Gaussian.

    Every result is rounded toward the safe side of the real-number value: ``radius`` and
    ``value`` (and the bilateral radius) down, ``threshold`` up. The steps come from measuring
    scipy against 40-50 digit mpmath: ``ndtri`` (Phi^-1) errs by at most 4.4 ulps over 105k p in
    (1/2, 1) (p - 1/2 down to 1e-16, 1 - p down to 1e-16), so with the scale sigma / sqrt(d)
    (<= 1.5 ulps) and the product the radius errs by < 6.5 * 2^-52 relative; it is rounded
    down by 16 * 2^-52 (3.6e-15) relative, a factor 2.5. ``ndtr`` (Phi) errs by <= 0.7 * 2^-52
    relative for x >= 0 and by <= 0.35 (8 + 4 x^2) 2^-52 for x < 0 (the argument's rounding is
    amplified by |x|), so it is moved by 4 * 2^-52 and (8 + 4 x^2) 2^-52 respectively (a factor
    >= 2.9); values below 1e-300 (subnormal) become 0."""

    method = "closed-form"
    #: relative rounding steps (units of 2^-52), see the class docstring
    RADIUS_STEP, ARG_STEP, CDF_STEP = 16 * _EPS, 4 * _EPS, 4 * _EPS

    def __init__(self, noise: Noise, norm: str):
        super().__init__(noise, norm)
        self.scale = noise.sigma / (math.sqrt(noise.dim) if norm == "linf" else 1.0)

    def _quantile(self, p, up: bool):
        """Phi^-1(p) rounded down (or up)."""
        q = special.ndtri(p)
        return _round_up(q, self.RADIUS_STEP) if up else _round_down(q, self.RADIUS_STEP)

    def _cdf_down(self, x):
        """A lower bound of Phi(x) (0 where it underflows)."""
        x = np.asarray(x, dtype=float)
        v = _round_down(special.ndtr(x), (8 + 4 * np.minimum(x, 0.0) ** 2) * _EPS)
        return np.where(v >= 1e-300, v, 0.0)

    def radius(self, p):
        arr = check_probability(p)
        r = _round_down(self.scale * special.ndtri(arr), self.RADIUS_STEP)
        return _scalar_or_array(np.maximum(r, 0.0), p)

    def threshold(self, r):
        x = _round_up(check_radius(r) / self.scale, self.ARG_STEP)
        return _scalar_or_array(_round_up(special.ndtr(x), self.CDF_STEP), r)

    def value(self, p, r):
        p = float(check_probability(p))
        x = _round_up(float(check_radius(r)) / self.scale, self.ARG_STEP)
        y = np.nextafter(self._quantile(p, up=False) - x, -np.inf)  # the subtraction's rounding
        return float(self._cdf_down(y))

    def bilateral_radius(self, p_a, p_b):
        check_probability(p_a, "p_a")
        check_probability(p_b, "p_b")
        gap = np.nextafter(self._quantile(p_a, up=False) - self._quantile(p_b, up=True),
                           -np.inf)
        r = _round_down(0.5 * self.scale * gap, self.ARG_STEP)
        return max(float(self.radius(p_a)), float(r))


class TableCertificate(Certificate):
    """A monotone table r_i -> t_i >= p*(r_i), in units where sigma = 1 and scaled on use."""

    def __init__(self, noise: Noise, norm: str, radii: np.ndarray, thresholds: np.ndarray,
                 method: str, failure_prob: float, unit_scale: float = 1.0, engine=None,
                 info: dict | None = None):
        super().__init__(noise, norm, failure_prob)
        radii = np.asarray(radii, dtype=float)
        # a threshold that could not be computed certifies nothing
        thresholds = np.nan_to_num(np.asarray(thresholds, dtype=float), nan=np.inf)
        # sound monotone envelope: p*(r_i) <= p*(r_j) <= t_j for j >= i (balls are nested)
        thresholds = np.minimum.accumulate(thresholds[::-1])[::-1]
        self.radii, self.thresholds = radii, thresholds
        self.method = method
        #: radius in user units = table radius * scale (sigma, and 1/sqrt(d) for Theorem 3)
        self.scale = noise.sigma * unit_scale
        self.engine = engine
        self.info = info or {}

    def radius(self, p, exact: bool = False):
        """Table lookup rounded down to a grid radius (sound); ``exact=True`` refines between
        the bracketing grid radii with the exact engine (quadrature only)."""
        arr = check_probability(p)
        idx = np.searchsorted(self.thresholds, arr, side="left") - 1  # largest i: t_i < p
        r = np.where(idx >= 0, self.radii[np.clip(idx, 0, None)], 0.0)
        if exact and self.engine is not None:
            # below the first grid radius too: p*(0) = 1/2 < p always
            i_hi = np.clip(idx + 1, min(1, self.radii.size - 1), self.radii.size - 1)
            r = np.vectorize(self._refine, otypes=[float])(arr, r, i_hi)
        out = r * self.scale
        # round down where out / scale > r, so that threshold(radius(p)) finds the same grid radius
        out = np.where(out / self.scale > r, np.nextafter(out, 0.0), out)
        return _scalar_or_array(out, p)

    def _refine(self, p, r_lo, i_hi):
        """The root of threshold(r) + margin = p in [r_lo, r_hi], returned slightly below it.

        Usually two exact evaluations (one vectorised call): a guess interpolated linearly in
        Phi^-1(threshold) between the bracketing grid points, and the guess + 1e-6 relative; if
        the root lies between them the guess is returned, else brentq on the narrowed bracket."""
        r_hi = self.radii[i_hi]
        if r_hi <= r_lo:
            return r_lo
        margin = self.info.get("exact_margin", self.info.get("numerical_margin", 0.0))

        def f(r):
            t = self.engine.threshold(np.atleast_1d(np.asarray(r, dtype=float)))
            return np.where(np.isfinite(t), t, 1.0) + margin - p

        from scipy import optimize, stats

        t_lo, t_hi = stats.norm.ppf(np.clip([self.thresholds[i_hi - 1], self.thresholds[i_hi]],
                                            1e-300, 1 - 1e-16))
        t_p = stats.norm.ppf(p)
        w = (t_p - t_lo) / (t_hi - t_lo) if t_hi > t_lo else 0.5
        guess = r_lo + min(max(w, 0.0), 1.0) * (r_hi - r_lo)
        step = max(1e-6 * guess, 1e-12)
        f_guess, f_next = f([guess, min(guess + step, r_hi)])
        if f_guess < 0 <= f_next:
            return max(r_lo, guess)
        if f_guess < 0:
            lo, hi = guess, r_hi
            if f(hi)[0] < 0:
                # the table's bracket rests on the coarse thresholds plus their margin, which can
                # exceed the gap to p (k ~ d: margin 5.7e-7, one grid step 3e-6): the engine's
                # root may lie beyond r_hi. Walk up the grid, a few radii per engine call, to
                # the first radius the engine does not certify
                lo, hi = r_hi, None
                j = i_hi + 1
                while j < self.radii.size:
                    cand = self.radii[j:j + 4]
                    bad = np.flatnonzero(f(cand) >= 0)
                    if bad.size:
                        hi = float(cand[bad[0]])
                        lo = float(self.radii[j + bad[0] - 1])
                        break
                    lo, j = float(cand[-1]), j + 4
                if hi is None:  # certified up to the end of the grid
                    return lo
        else:
            lo, hi = r_lo, guess
            if f(lo)[0] >= 0:
                return r_lo
        r = optimize.brentq(lambda x: float(f(x)[0]), lo, hi, xtol=1e-12 * hi, rtol=1e-10)
        # below the root, checked: never above the exact radius (lo itself has f(lo) < 0). Near
        # p = 1/2 the threshold resolves the radius only to ~1e-16 / (p - 1/2) relative: step
        # down further until the check holds
        cands = np.maximum(lo, r * (1 - np.array([1e-9, 1e-7, 1e-5, 1e-3])))
        ok = f(cands) < 0
        return float(cands[np.argmax(ok)]) if ok.any() else lo

    def threshold(self, r):
        rr = check_radius(r) / self.scale
        # smallest grid radius >= r: p*(r) <= p*(r_j) <= t_j (beyond the grid: not certified)
        j = np.searchsorted(self.radii, rr, side="left")
        t = np.where(j < self.radii.size, self.thresholds[np.clip(j, 0, self.radii.size - 1)],
                     np.inf)
        return _scalar_or_array(t, r)

    def value(self, p, r):
        check_probability(p)
        check_radius(r)
        if self.engine is None:
            return super().value(p, r)
        margin = self.info.get("exact_margin", self.info.get("numerical_margin", 0.0))
        return self.engine.value(float(p), float(r) / self.scale, margin)

    def describe(self):
        return {**super().describe(), **{k: v for k, v in self.info.items()
                                         if isinstance(v, (int, float, str))}}


# ----------------------------------------------------------------------------- builders
@functools.lru_cache(maxsize=32)
def _l2_engine(dim: int, k: float):
    return L2FamilyLine(k) if dim == 1 else L2FamilyQuadrature(dim, k)


def _quadrature_table(dim: int, k: float, n_radii: int = 1024):
    """Thresholds of the l2 family (sigma = 1) on a radius grid, with a numerical margin."""
    fine = _l2_engine(dim, k)
    if dim == 1:  # roots to machine precision: fine and coarse are the same exact engine
        coarse = fine
    else:
        coarse = L2FamilyQuadrature(dim, k, panels=32 if dim > 8 else 64, order=16)
    # radius range: up to where p*(r) exceeds 1 - 1e-12 (a power of 2, below 1 when k ~ d)
    def saturated(r):
        t = fine.threshold(np.array([r]))[0]
        return not t < 1 - 1e-12  # NaN counts as saturated: never certify on a failed value

    hi = 1.0
    while not saturated(hi) and hi < 1e4:
        hi *= 2
    while saturated(hi / 2) and hi > 1e-8:
        hi /= 2
    dense = np.linspace(0.0, min(hi, 6.0), n_radii)
    radii = np.unique(np.concatenate([dense, np.linspace(dense[-1], hi, 65)]))
    thresholds = coarse.threshold(radii)
    # error estimates: coarse (the table) against fine, and fine (the exact refinement) against
    # a finer rule, each on a subset of the radii, times a safety factor of 10
    check = radii[1:: max(1, radii.size // 32)]
    fine_t = fine.threshold(check)
    margin = 10 * float(np.max(np.abs(fine_t - coarse.threshold(check))))
    if dim == 1:
        fine_margin = 0.0
    else:
        finer = L2FamilyQuadrature(dim, k, panels=128, order=32)
        few = slice(None, None, 4)
        fine_margin = 10 * float(np.max(np.abs(finer.threshold(check[few]) - fine_t[few])))
    floor = 1e-10 if dim == 1 else 1e-12
    margin, fine_margin = margin + floor, fine_margin + floor
    info = {"numerical_margin": margin, "exact_margin": fine_margin}
    return radii, np.minimum(thresholds + margin, 1.0 + margin), info


#: most log-ratio values held at once by the DKW step of a Monte Carlo table (block x samples),
#: and the samples per evaluation of the log ratio on the CPU (cache-sized: ~1.5x faster)
_DKW_BLOCK_FLOATS, _DKW_CHUNK = 1 << 24, 1 << 16


def _monte_carlo_table(noise: Noise, norm: str, samples: int, failure_prob: float, seed: int,
                       n_radii: int, device=None, progress: bool = False):
    import torch

    unit = noise.with_sigma(1.0)
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    pilot = unit.sample_stats(min(20_000, samples), generator=gen, device=device)

    def pilot_estimate(r):
        ell = unit.log_ratio_from_stats(pilot, r, norm).cpu().numpy()
        return float(np.mean(ell <= -np.median(ell)))

    hi = 1e-3
    while pilot_estimate(hi) < 0.9999 and hi < 1e4:
        hi *= 2
    radii = np.linspace(0.0, 1.25 * hi, n_radii + 1)[1:]
    chunk = max(1, min(samples, (1 << 24) // unit.dim))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=samples, desc=f"certificate {noise.name} d={noise.dim}", unit="sample")
    parts, done = [], 0
    while done < samples:
        m = min(chunk, samples - done)
        parts.append(unit.sample_stats(m, generator=gen, device=device))
        done += m
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    st = torch.cat(parts)
    beta = failure_prob / radii.size  # union bound over the grid
    if progress:  # the second step (seconds at 1M samples) gets its own bar
        from tqdm.auto import tqdm

        bar = tqdm(total=radii.size, unit="radius",
                   desc=f"certificate {noise.name} d={noise.dim}: DKW thresholds")
    # the log ratios of a block of radii, one row each (on the CPU a cache-sized chunk of samples
    # at a time: elementwise, so the same numbers), then one selection and one count for the
    # block (dkw_thresholds, bit for bit dkw_threshold of each row); bounded memory
    block = max(1, min(radii.size, _DKW_BLOCK_FLOATS // samples))
    chunk = _DKW_CHUNK if st.device.type == "cpu" else samples
    rows = np.empty((block, samples))
    thresholds = np.empty(radii.size)
    for start in range(0, radii.size, block):
        part = radii[start:start + block]
        for lo in range(0, samples, chunk):
            st_chunk = st[lo:lo + chunk]
            for i, r in enumerate(part):
                rows[i, lo:lo + chunk] = unit.log_ratio_from_stats(st_chunk, r, norm).cpu().numpy()
        thresholds[start:start + part.size] = dkw_thresholds(rows[:part.size], beta)
        if bar is not None:
            bar.update(part.size)
    if bar is not None:
        bar.close()
    radii = np.concatenate([[0.0], radii])
    thresholds = np.concatenate([[0.5], thresholds])
    return radii, thresholds, {"samples": samples, "seed": seed, "n_radii": n_radii}


def _as_int(x, name: str) -> int:
    """An integer argument: ints, integral floats and numeric strings; anything else refused."""
    try:
        value = float(x) if not isinstance(x, (int, np.integer)) else x
        if isinstance(x, (bool, str, bytes)) or value != int(value):
            raise ValueError
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise SmoothCertError(f"{name} must be an integer, got {x!r}") from None


def _device_type(device) -> str:
    import torch

    return torch.device(device).type if device is not None else "cpu"


def get_certificate(noise: Noise, norm: str = "l2", *, samples: int = DEFAULT_SAMPLES,
                    failure_prob: float = DEFAULT_FAILURE_PROB, seed: int = 0,
                    n_radii: int = 256, device=None, cache: bool = True,
                    progress: bool = False) -> Certificate:
    """The certificate of ``noise`` against ``norm`` attacks (cached on disk when a table).

    ``samples``, ``failure_prob``, ``seed`` and ``n_radii`` only matter for Monte Carlo tables:
    with probability >= 1 - failure_prob the whole table is sound."""
    if not isinstance(noise, Noise):
        raise SmoothCertError(f"noise must be a smoothcert Noise, got {type(noise).__name__}")
    noise.check_certifiable(norm)
    if isinstance(noise, Gaussian) or (isinstance(noise, L2Family) and noise.k == 0):
        return GaussianCertificate(noise, norm)
    if isinstance(noise, L2Family):
        unit_scale = 1.0 / math.sqrt(noise.dim) if norm == "linf" else 1.0
        key = {"engine": ENGINE_VERSION, "kind": "quadrature", "dim": noise.dim, "k": noise.k}
        radii, thr, info = cached_table(
            key, lambda: _quadrature_table(noise.dim, noise.k), use_cache=cache,
            check=check_quadrature_table(_l2_engine(noise.dim, noise.k)))
        return TableCertificate(noise, norm, radii, thr, "quadrature", 0.0, unit_scale,
                                engine=_l2_engine(noise.dim, noise.k), info=info)
    samples, n_radii, seed = (_as_int(samples, "samples"), _as_int(n_radii, "n_radii"),
                              _as_int(seed, "seed"))
    if samples < 100:
        raise SmoothCertError(
            f"a Monte Carlo certificate needs at least 100 samples, got {samples}")
    if isinstance(failure_prob, (str, bytes)) or np.ndim(failure_prob):
        raise SmoothCertError(f"failure_prob must be a number, got {failure_prob!r}")
    failure_prob = float(_as_float_array(failure_prob, "failure_prob"))
    if not 0 < failure_prob < 1:
        raise SmoothCertError(f"failure_prob must lie in (0, 1), got {failure_prob}")
    if n_radii < 1:
        raise SmoothCertError(f"n_radii must be >= 1, got {n_radii}")
    if not 0 <= seed < 2**63:
        raise SmoothCertError(f"seed must be an integer in [0, 2^63), got {seed}")
    key = {"engine": ENGINE_VERSION, "kind": "monte-carlo", "noise": noise.name,
           "dim": noise.dim, "k": noise.k, "norm": norm, "samples": samples,
           "failure_prob": failure_prob, "seed": seed, "n_radii": n_radii,
           # random streams differ between CPU and CUDA generators: part of the identity
           "device_type": _device_type(device)}
    radii, thr, info = cached_table(
        key, lambda: _monte_carlo_table(noise, norm, samples, failure_prob, seed, n_radii,
                                        device, progress), use_cache=cache,
        check=check_monte_carlo_table(noise, norm, key))
    return TableCertificate(noise, norm, radii, thr, "monte-carlo", failure_prob, 1.0,
                            info=info)


def certified_radius(noise: Noise, p, norm: str = "l2", **kwargs):
    """Shortcut: ``get_certificate(noise, norm, **kwargs).radius(p)``."""
    return get_certificate(noise, norm, **kwargs).radius(p)


__all__ = ["Certificate", "GaussianCertificate", "TableCertificate", "get_certificate",
           "certified_radius", "check_probability", "dkw_threshold", "dkw_value",
           "DEFAULT_SAMPLES", "DEFAULT_FAILURE_PROB"]
