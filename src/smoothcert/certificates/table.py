"""A certificate read from a table of radii r_i and upper bounds t_i of p*(r_i) (sigma = 1).

The lookup R(p) = max{r_i : t_i < p} rounds toward the safe side; where the table was built
from an exact engine (:mod:`.quadrature`), ``radius(p, exact=True)`` refines between the grid
radii with it. The tables are built by :mod:`.quadrature` and :mod:`.montecarlo`.
"""

from __future__ import annotations

import numpy as np

from ..noises import Noise
from .base import Certificate, _scalar_or_array, check_probability, check_radius


class TableCertificate(Certificate):
    """A monotone table r_i -> t_i >= p*(r_i), in units where sigma = 1 and scaled on use."""

    def __init__(
        self,
        noise: Noise,
        norm: str,
        radii: np.ndarray,
        thresholds: np.ndarray,
        method: str,
        failure_prob: float,
        unit_scale: float = 1.0,
        engine=None,
        info: dict | None = None,
    ):
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

    def radius(self, p, *, exact: bool = False):
        """Table lookup rounded down to a grid radius (sound); ``exact=True`` refines between
        the bracketing grid radii with the exact engine (quadrature only: a Monte Carlo table
        has none and ignores it)."""
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

        t_lo, t_hi = stats.norm.ppf(
            np.clip([self.thresholds[i_hi - 1], self.thresholds[i_hi]], 1e-300, 1 - 1e-16)
        )
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
                    cand = self.radii[j : j + 4]
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
        t = np.where(
            j < self.radii.size, self.thresholds[np.clip(j, 0, self.radii.size - 1)], np.inf
        )
        return _scalar_or_array(t, r)

    def value(self, p, r):
        check_probability(p)
        check_radius(r)
        if self.engine is None:
            return super().value(p, r)
        margin = self.info.get("exact_margin", self.info.get("numerical_margin", 0.0))
        return self.engine.value(float(p), float(r) / self.scale, margin)

    def describe(self):
        return {
            **super().describe(),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str))},
        }
