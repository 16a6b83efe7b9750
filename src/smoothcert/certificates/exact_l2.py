"""Exact (quadrature) certificate of the l2 family of eq. (8), sigma = 1.

Notation: ell(z) = log(pi_delta / pi_0)(z) at delta* = (r, 0, ..., 0) (Theorem 2) and
G_r(c) = P_{pi_0}(ell <= c). By Neyman-Pearson (equivalently, the dual of eq. (5) at the optimal
lambda = exp(c_p), a quantile of the likelihood ratio) the bound of eq. (5) is

    V(p, r) = P_{pi_delta}(ell <= c_p) = 1 - G_r(-c_p),      G_r(c_p) = p,

using that ell under pi_delta has the law of -ell under pi_0 (pi_0 is symmetric). Hence

    V(p, r) > 1/2   <=>   p > p*(r) := G_r(-q_r),   q_r the median of ell under pi_0,

and the certified radius is R(p) = sup{r : p*(r) < p}. For the Gaussian p*(r) = Phi(r / sigma).

ell depends on z only through rho = ||z||_2 and u = z_1 / ||z||_2, independent under pi_0, with
rho^2 ~ chi^2_{d-k} and (1 + u)/2 ~ Beta((d-1)/2, (d-1)/2). For fixed rho, ell is increasing in u,
so {ell <= c} = {u <= u*(rho, c)} and

    G_r(c) = E_rho[ I_{(1+u*)/2}((d-1)/2, (d-1)/2) ],

a 1-D integral, computed by composite Gauss-Legendre quadrature over the chi^2 quantile
v = F(rho^2) in (0, 1). u* comes from the Wright omega function and one Newton step, in log space,
so everything stays finite for d up to 150528 and k up to d - 1. In low dimension (d <= 8) the
cosine law's edges make the integrand non-smooth where u*(rho, c) reaches +-1, i.e. at the roots
of ell along the axis of delta*: the panels holding those kinks are split there, each piece
integrated with the substitution s = kink +- width x^2 (smooth in x). The quadrature error is
estimated by comparing two node counts and added to p*(r) (so radii err on the safe side).
"""

from __future__ import annotations

import numpy as np
from scipy import special  # scipy.stats and .optimize where used: fast start-up

_GL_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _composite_gauss_legendre(panels: int, order: int):
    """Nodes v on (0, 1), their complements 1 - v (exact, for the upper tail), weights, and the
    panel edges of the lower half.

    Panels are uniform in the middle and geometric towards both ends (the tails of rho); the
    rule is symmetric about 1/2 so that complements never round to 0. Nodes are panel-major:
    the panels of the lower half (edges ``e``, v = s) then their mirror images (v = 1 - s)."""
    key = panels * 1000 + order
    if key not in _GL_CACHE:
        x, w = np.polynomial.legendre.leggauss(order)
        tail = np.geomspace(1e-15, 0.05, panels // 4)
        edges = np.unique(np.concatenate([[0.0], tail, np.linspace(0.05, 0.5, panels // 4 + 1)]))
        a, b = edges[:-1, None], edges[1:, None]
        lower = ((a + b) / 2 + (b - a) / 2 * x[None, :]).ravel()
        wl = ((b - a) / 2 * w[None, :]).ravel()
        _GL_CACHE[key] = (
            np.concatenate([lower, 1 - lower]),
            np.concatenate([1 - lower, lower]),
            np.concatenate([wl, wl]),
            edges,
        )
    return _GL_CACHE[key]


#: up to this dimension the cosine law's edges (P(U <= u) ~ (1 -+ u)^((d-1)/2) at u = +-1) are
#: rough enough to spoil the rule: the panels holding the kinks of the integrand are split there
KINK_DIM = 8


class L2FamilyQuadrature:
    """G_r(c), p*(r) and V(p, r) of the l2 family with sigma = 1, for dimension d and shape k."""

    def __init__(self, dim: int, k: float, panels: int | None = None, order: int = 24):
        if dim < 2:
            raise ValueError("the quadrature engine needs d >= 2 (d = 1 is handled separately)")
        if panels is None:
            panels = 64
        self.dim, self.k = dim, float(k)
        self.a = (dim - 1) / 2
        v, vc, self.w, self.edges = _composite_gauss_legendre(panels, order)
        self.order = order
        self.dof = dof = dim - self.k
        from scipy import stats

        # rho^2 at the quantile nodes; isf of the exact complement in the upper half
        rho2 = np.where(v < 0.5, stats.chi2.ppf(v, dof), stats.chi2.isf(vc, dof))
        self.rho2 = np.maximum(rho2, np.finfo(float).tiny)
        self.rho = np.sqrt(self.rho2)
        # low dimension: split the panels at the kinks of the integrand, the radii rho where
        # u*(rho, c) reaches +-1, i.e. the roots of ell along the axis of delta*, z = +-rho e_1
        self.kinks = dim <= KINK_DIM
        self._axis = _Axis(self.k) if self.kinks and self.k > 0 else None
        # a piece reaches over up to 1.5 panels from its kink: three times the nodes
        x, wx = np.polynomial.legendre.leggauss(3 * order)
        self._x01, self._w01 = (x + 1) / 2, wx / 2

    # -- the threshold u*(rho, c) of {ell <= c} -------------------------------------------
    def _sq_norm_change(self, c: np.ndarray, rho2: np.ndarray) -> np.ndarray:
        """Solve (k/2) log(1 + D/rho^2) + D/2 = -c for D = ||z-delta||^2 - ||z||^2, per node
        (the change of the squared norm at the edge of {ell <= c})."""
        k = self.k
        if k == 0:
            return -2.0 * c + 0.0 * rho2
        y = rho2 / k + np.log(rho2 / k) - 2.0 * c / k
        w = special.wrightomega(y)
        sq_change = k * w - rho2
        sq_change = np.maximum(sq_change, -rho2 * (1 - 1e-15))
        for _ in range(2):  # Newton polish in the well-conditioned form
            h = 0.5 * k * np.log1p(sq_change / rho2) + 0.5 * sq_change + c
            dh = 0.5 * k / (rho2 + sq_change) + 0.5
            sq_change = np.maximum(sq_change - h / dh, -rho2 * (1 - 1e-15))
        return sq_change

    def _integrand(self, c, r, rho2, rho):
        """P(U <= u*(rho, c)) with U^2 ~ Beta(1/2, (d-1)/2), sign symmetric (4x faster than
        I_x(a, a)); arguments broadcast together."""
        u = (r * r - self._sq_norm_change(c, rho2)) / (2.0 * rho * r)
        u = np.clip(u, -1.0, 1.0)
        return 0.5 + 0.5 * np.sign(u) * special.betainc(0.5, self.a, u * u)

    def _kink_rho(self, c, r):
        """The radii rho (..., K) where u*(rho, c) = +-1 (NaN where there is none)."""
        if self.k == 0:  # ell = r z_1 - r^2/2: u* = (c + r^2/2) / (r rho)
            t = (c + 0.5 * r * r) / r
            out = np.stack([t, -t], axis=-1)
            return np.where(out > 0, out, np.nan)
        a1, a2, a3, has, b1, b2, part = self._axis.roots(c, r)
        nan = np.full(c.shape, np.nan)
        ts = [
            a1,
            np.where(has, a2, nan),
            np.where(has, a3, nan),
            np.where(part, b1, nan),
            np.where(part, b2, nan),
        ]
        return np.exp(np.stack(ts, axis=-1))

    def cdf(self, c, r) -> np.ndarray:
        """G_r(c) = P(ell <= c); ``c`` and ``r`` are arrays broadcast together."""
        c, r = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(r, dtype=float))
        vals = self._integrand(c[..., None], r[..., None], self.rho2, self.rho)
        if not self.kinks:
            return vals @ self.w
        half = self.edges.size - 1
        panel = (
            vals.reshape(*vals.shape[:-1], 2 * half, self.order)
            * self.w.reshape(2 * half, self.order)
        ).sum(-1)
        # panels in increasing v: the lower half, then the mirrored upper half reversed
        panel = np.concatenate([panel[..., :half], panel[..., : half - 1 : -1]], -1)
        ev = np.concatenate([self.edges, 1 - self.edges[-2::-1]])
        evc = np.concatenate([1 - self.edges, self.edges[-2::-1]])  # exact complements
        with np.errstate(all="ignore"):
            rho_k = self._kink_rho(c, r)
        from scipy import stats

        v_k = stats.chi2.cdf(rho_k * rho_k, self.dof)
        vc_k = stats.chi2.sf(rho_k * rho_k, self.dof)
        valid = np.isfinite(v_k) & (v_k > 0) & (vc_k > 0) & (r[..., None] > 0)
        low = v_k < 0.5
        s_k = np.where(valid, np.where(low, v_k, vc_k), 0.25)
        j = np.clip(np.searchsorted(self.edges, s_k, side="right") - 1, 0, half - 1)
        gi = np.where(low, j, 2 * half - 1 - j)
        order = np.argsort(np.where(valid, gi + 0.5 * np.where(low, v_k, -vc_k), np.inf), -1)
        v_k, vc_k, gi, valid, low = (
            np.take_along_axis(x, order, -1) for x in (v_k, vc_k, gi, valid, low)
        )
        # the panels within one of a kink are integrated again (a kink just outside a panel
        # would still spoil its rule), split at the kinks and, between two kinks closer than
        # that, at their midpoint
        g = np.arange(2 * half)
        covered = (valid[..., None] & (np.abs(g - gi[..., None]) <= 1)).any(-2)
        near = valid[..., 1:] & valid[..., :-1] & (gi[..., 1:] - gi[..., :-1] <= 2)
        no = np.zeros(near.shape[:-1] + (1,), dtype=bool)
        prev_near, next_near = np.concatenate([no, near], -1), np.concatenate([near, no], -1)
        mid = np.concatenate([v_k[..., :1], (v_k[..., 1:] + v_k[..., :-1]) / 2], -1)
        midc = np.concatenate([vc_k[..., :1], (vc_k[..., 1:] + vc_k[..., :-1]) / 2], -1)
        lo_g, hi_g = np.clip(gi - 1, 0, None), np.clip(gi + 2, None, 2 * half)
        left = np.where(prev_near, mid, ev[lo_g])
        leftc = np.where(prev_near, midc, evc[lo_g])
        mid_n = np.concatenate([mid[..., 1:], v_k[..., -1:]], -1)
        midc_n = np.concatenate([midc[..., 1:], vc_k[..., -1:]], -1)
        right = np.where(next_near, mid_n, ev[hi_g])
        rightc = np.where(next_near, midc_n, evc[hi_g])
        w_left = np.where(low, v_k - left, leftc - vc_k)
        w_right = np.where(low, right - v_k, vc_k - rightc)
        # two pieces per kink, each with the substitution v = v_k -+ width x^2 that makes the
        # (1 -+ u)^((d-1)/2) edge of the cosine law a smooth function of x
        width = np.maximum(np.stack([w_left, w_right], axis=-1), 0.0)[..., None]
        sign = np.array([-1.0, 1.0])[:, None]
        step = sign * width * self._x01**2  # (..., K, 2, order)
        v, vc = v_k[..., None, None] + step, vc_k[..., None, None] - step
        a = self.dof / 2
        with np.errstate(all="ignore"):
            rho2 = 2.0 * np.where(
                v < 0.5,
                special.gammaincinv(a, np.clip(v, 0, 1)),
                special.gammainccinv(a, np.clip(vc, 0, 1)),
            )
        rho2 = np.clip(
            np.nan_to_num(rho2, nan=np.finfo(float).tiny), np.finfo(float).tiny, np.finfo(float).max
        )
        with np.errstate(over="ignore", divide="ignore"):  # rho^2 at the tiny end: clipped
            fine = self._integrand(
                c[..., None, None, None], r[..., None, None, None], rho2, np.sqrt(rho2)
            )
        wts = 2.0 * width * self._x01 * self._w01
        add = np.where(valid, (fine * wts).sum((-1, -2)), 0.0).sum(-1)
        return np.where(covered, 0.0, panel).sum(-1) + add

    def median(self, r) -> np.ndarray:
        """q_r with G_r(q_r) = 1/2 (vectorised over an array of radii r > 0)."""
        from scipy.optimize import elementwise

        r = np.asarray(r, dtype=float)
        # ell is of order r * rho * u plus r^2 terms: bracket from that scale
        scale = r * (1.0 + self.k / np.median(self.rho2)) * (np.median(self.rho) + r) + r * r

        # solve for s = c / scale: the tolerance is relative to the scale of ell, so that tiny
        # radii (median about -r^2/2, far below any absolute tolerance) are solved as accurately
        # as large ones
        def f(s, r, scale):
            return self.cdf(s * scale, r) - 0.5

        # first try a tight bracket around the large-d approximation of the median,
        # -(r^2/2)(1 + k/rho^2) (exact for the Gaussian); where it does not bracket the root
        # (k close to d, tiny d), search outwards from [-1, 1]
        tol = dict(xatol=1e-15, xrtol=1e-13, fatol=0, frtol=0)
        guess = -0.5 * r * r * (1.0 + self.k / np.median(self.rho2)) / scale
        width = 0.02 * np.abs(guess) + 1e-3
        lo, hi = guess - width, guess + width
        good = (f(lo, r, scale) <= 0) & (f(hi, r, scale) >= 0)
        out = np.empty_like(r)
        if good.any():
            args = (r[good], scale[good])
            out[good] = elementwise.find_root(f, (lo[good], hi[good]), args=args, tolerances=tol).x
        if not good.all():
            args = (r[~good], scale[~good])
            bracket = elementwise.bracket_root(f, -1.0, 1.0, args=args).bracket
            out[~good] = elementwise.find_root(f, bracket, args=args, tolerances=tol).x
        return out * scale

    def threshold(self, r) -> np.ndarray:
        """p*(r) = G_r(-q_r): the smallest p_A lower bound that certifies radius r
        (vectorised; p*(0) = 1/2)."""
        r = np.asarray(r, dtype=float)
        out = np.full(r.shape, 0.5)
        pos = r > 0
        if pos.any():
            rp = r[pos]
            out[pos] = self.cdf(-self.median(rp), rp)
        return out

    def value(self, p: float, r: float, margin: float = 0.0) -> float:
        """A lower bound of V(p, r), the bound of eq. (5), when computed G_r is within
        ``margin`` of the true one.

        Weak duality gives, for every c (lambda = e^c),
        V(p, r) >= e^c (p - G_r(c)) + P_delta(ell < c) = e^c (p - G_r(c)) + 1 - G_r(-c),
        so any c with G_r(c) <= p certifies V >= 1 - G_r(-c): no accurate quantile is needed.
        We solve computed G_r(c) = p - margin, keep the larger end of the final bracket with
        computed G_r(c) <= p - margin (so true G_r(c) <= p) and return 1 - G_r(-c) - margin.
        Equal to V(p, r) = 1 - G_r(-c_p) up to the solver tolerance."""
        from scipy.optimize import elementwise

        if r <= 0:
            return p
        target = p - margin
        if target <= 0:
            return 0.0
        f = lambda c: self.cdf(c, r) - target  # noqa: E731
        br = elementwise.bracket_root(f, -1.0, 1.0)
        if not br.success:
            return 0.0
        res = elementwise.find_root(f, br.bracket)
        (xl, xr), (fl, fr) = res.bracket, res.f_bracket
        # the largest end with G_r(c) <= target (the solver stops at f = 0, which can be the
        # right end with the left one far below)
        c = float(xr if fr <= 0 else xl if fl <= 0 else np.nan)
        if not np.isfinite(c):
            return 0.0
        return max(0.0, float(1.0 - self.cdf(-c, r)) - margin)


class _Axis:
    """ell of the l2 family (sigma = 1, k > 0) along the axis of delta* = r e_1:
      ell_+(rho) = -k log(|rho - r| / rho) + r rho - r^2/2        (z = +rho e_1)
      ell_-(rho) = -k log((rho + r) / rho) - r rho - r^2/2        (z = -rho e_1)
    ell_+ increases on (0, r) from -inf to +inf and on (r, inf) falls from +inf to its minimum at
    rho (rho - r) = k, then rises to +inf; ell_- rises from -inf to its maximum at
    rho (rho + r) = k and falls to -inf. :meth:`roots` gives the ends of {ell_+- <= c}."""

    def __init__(self, k: float):
        self.k = float(k)

    def _lp(self, t, r):  # ell_+ at rho = exp(t)
        rho = np.exp(t)
        return -self.k * (np.log(np.abs(rho - r)) - t) + r * rho - r * r / 2

    def _lm(self, t, r):  # ell_- at rho = exp(t)
        rho = np.exp(t)
        return -self.k * (np.log(rho + r) - t) - r * rho - r * r / 2

    def _root(self, f, lo, hi, c, r):
        """Root in t of f(t, r) = c on [lo, hi], f monotone there (vectorised). Where f - c has
        no sign change the root lies beyond the representable bracket: take the nearer end."""
        from scipy.optimize import elementwise

        lo, hi, c, r = np.broadcast_arrays(lo, hi, c, r)
        flo, fhi = f(lo, r) - c, f(hi, r) - c
        ok = np.sign(flo) != np.sign(fhi)
        end = np.where(np.abs(flo) < np.abs(fhi), lo, hi)
        if not ok.any():
            return end
        res = elementwise.find_root(
            lambda t, c, r: f(t, r) - c,
            (lo[ok], hi[ok]),
            args=(c[ok], r[ok]),
            tolerances=dict(xatol=1e-15, xrtol=4e-16, fatol=0, frtol=0),
        )
        out = end.astype(float).copy()
        out[ok] = res.x
        return out

    def roots(self, c, r):
        """log rho of the ends of {ell <= c} on the axis: (0, a1] and, where ``has``, [a2, a3]
        for z = +rho e_1; (0, b1] and [b2, inf) for z = -rho e_1 where ``part`` (else all)."""
        c, r = np.broadcast_arrays(np.asarray(c, float), np.asarray(r, float))
        k, lr = self.k, np.log(r)
        far = np.log(r + 60.0 + 60.0 / np.maximum(r, 1e-300)) + 5.0  # ell_+ > c, ell_- < c beyond
        near = np.full(c.shape, -745.0)
        # z = +rho: (0, a1] on (0, r), and [a2, a3] on (r, inf) if c >= the minimum
        below = lr - 1e-15 * np.maximum(1.0, np.abs(lr))
        a1 = self._root(self._lp, near, np.minimum(below, lr - 1e-12), c, r)
        t_min = np.log((r + np.sqrt(r * r + 4 * k)) / 2)
        lmin = self._lp(t_min, r)
        above = lr + 1e-12
        has = c >= lmin
        a2 = self._root(
            self._lp,
            np.where(has, above, t_min - 1),
            np.where(has, t_min, t_min),
            np.where(has, c, lmin + 1),
            r,
        )
        a3 = self._root(self._lp, t_min, np.maximum(far, t_min + 1), np.where(has, c, lmin + 1), r)
        # z = -rho: (0, b1] and [b2, inf) if c < the maximum, else everything
        t_max = np.log((-r + np.sqrt(r * r + 4 * k)) / 2)
        lmax = self._lm(t_max, r)
        part = c < lmax
        cc = np.where(part, c, lmax - 1)
        b1 = self._root(self._lm, near, t_max, cc, r)
        b2 = self._root(self._lm, t_max, np.maximum(far, t_max + 1), cc, r)
        return a1, a2, a3, has, b1, b2, part


class L2FamilyLine(_Axis):
    """The l2 family in d = 1 (0 < k < 1), sigma = 1: exact, by the roots of ell.

    z = +-rho with probability 1/2 each, rho ~ chi_{1-k}, and ell = ell_+(rho) or ell_-(rho)
    (:class:`_Axis`). So {ell <= c} is a union of at most four intervals of rho whose ends are
    roots of monotone pieces; their chi_{1-k} probabilities are exact (regularised incomplete
    gamma)."""

    def __init__(self, k: float):
        if not 0 < k < 1:
            raise ValueError("L2FamilyLine needs 0 < k < 1")
        super().__init__(k)

    def _F(self, x):
        """P(rho <= x) for rho ~ chi_{1-k}."""
        return special.gammainc((1 - self.k) / 2, np.square(x) / 2)

    def cdf(self, c, r) -> np.ndarray:
        a1, a2, a3, has, b1, b2, part = self.roots(c, r)
        plus = self._F(np.exp(a1)) + np.where(has, self._F(np.exp(a3)) - self._F(np.exp(a2)), 0)
        minus = np.where(part, self._F(np.exp(b1)) + 1 - self._F(np.exp(b2)), 1.0)
        return 0.5 * plus + 0.5 * minus

    median = L2FamilyQuadrature.median
    threshold = L2FamilyQuadrature.threshold
    value = L2FamilyQuadrature.value

    @property
    def rho2(self):  # scale used by the shared median bracket
        return np.array([1.0 - self.k])

    @property
    def rho(self):
        return np.sqrt(self.rho2)
