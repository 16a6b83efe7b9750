"""Eq. (7) for one input: lambda p_A, D(lambda) (exact, by integrating the CDF of the log
likelihood ratio) and their difference, whose maximiser is exp(c_p)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from scipy import optimize, stats

from ..certificates import get_certificate
from ..certificates.exact_l2 import L2FamilyQuadrature
from ..certificates.montecarlo import distance_estimate
from ..errors import SmoothCertError
from ..noises import Gaussian, L2Family, matched_sigma
from ..palette import GREY, OKABE_ITO
from .common import check_int, figure_result, generator, reproducible, running_max
from .plotting import decorate, new_figure, render

_GL8 = np.polynomial.legendre.leggauss(8)
NOISES = ("l2-family", "gaussian")


def _gl(a, b):
    x, w = _GL8
    a, b = np.asarray(a, float)[..., None], np.asarray(b, float)[..., None]
    return (a + b) / 2 + (b - a) / 2 * x, (b - a) / 2 * w


def distance_from_cdf(cdf: Callable[[np.ndarray], np.ndarray], edges: np.ndarray):
    """D(lambda) = E[(lambda - e^ell)_+] = int_0^lambda P(e^ell < t) dt
    = int_{-inf}^{log lambda} G(c) e^c dc at lambda = exp(edges), by 8-point Gauss-Legendre on
    each panel between consecutive ``edges`` (ascending; the tail below edges[0] is neglected:
    it is at most exp(edges[0]) G(edges[0]))."""
    nodes, weights = _gl(edges[:-1], edges[1:])
    vals = cdf(nodes.ravel()).reshape(nodes.shape) * np.exp(nodes)
    return np.concatenate([[0.0], np.cumsum((vals * weights).sum(-1))])


def _noise_specs(d: int, k: float, sig: float, sigma0: float, r: float, p: float) -> dict:
    """Per noise: the noise, the exact CDF G of ell at the l2 shift r, and its certificate's
    value(p, r)."""
    eng = L2FamilyQuadrature(d, k)
    ru = r / sig  # the unit-sigma engine at radius r / sigma
    rho = r / sigma0
    return {
        "l2-family": dict(
            noise=L2Family(d, sigma=sig, k=k),
            cdf=lambda c: eng.cdf(c, ru),
            value=lambda: float(eng.value(p, ru)),
        ),
        "gaussian": dict(
            noise=Gaussian(d, sigma=sigma0),
            cdf=lambda c: stats.norm.cdf((np.asarray(c) + rho**2 / 2) / rho),
            value=lambda: get_certificate(Gaussian(d, sigma=sigma0), "l2").value(p, r),
        ),
    }


def _at(G, c: float) -> float:
    return float(G(np.array([c]))[0])


def _distance_curve(G, p: float, h: float):
    """c_p (G(c_p) = p), the lower end c_lo (where the neglected tail exp(c) G(c) is below
    1e-13), panel edges of width ``h`` in log lambda up to 3 exp(c_p), and D on the edges."""
    c_p = optimize.brentq(lambda c: _at(G, c) - p, -60, 60, xtol=1e-14)
    c_lo = c_p - 1.0
    while math.exp(c_lo) * _at(G, c_lo) > 1e-13:
        c_lo -= 1.0
    c_hi = math.log(3.0 * math.exp(c_p))
    edges = np.arange(c_lo, c_hi + h / 2, h)
    return c_p, c_lo, edges, distance_from_cdf(G, edges)


def _distance_at(c: float, edges, D, G) -> float:
    """D(exp(c)) between the edges: D at the panel's left edge plus the quadrature to c."""
    j = int(np.clip(np.searchsorted(edges, c, side="right") - 1, 0, len(edges) - 2))
    nodes, w = _gl(edges[j], c)
    return D[j] + float((G(nodes.ravel()) * np.exp(nodes.ravel()) * w.ravel()).sum())


def _monte_carlo(noise, name: str, r: float, n_mc: int, seed: int, lam_p: float, D_at):
    """Monte Carlo D at a few lambdas (independent of the CDF), with standard errors."""
    st = noise.sample_stats(n_mc, generator=generator(seed, "tradeoff", name))
    ell = noise.log_ratio_from_stats(st, r, "l2").numpy()
    lam_marks = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0]) * lam_p / 2
    mc = []
    for lm in lam_marks:
        hh = np.maximum(lm - np.exp(np.minimum(ell, 700.0)), 0.0)
        exact = D_at(math.log(lm))
        se = float(hh.std() / math.sqrt(n_mc))
        mc.append(
            {
                "lambda": float(lm),
                "D_mc": distance_estimate(ell, lm),
                "se": se,
                "D_quadrature": exact,
            }
        )
    return mc


def _analyse(name: str, spec: dict, p: float, r: float, h: float, n_mc: int, seed: int):
    """One noise: D on a lambda grid, the numerical maximiser of lambda p - D(lambda) against
    exp(c_p) and value(p, r), the reflection identity and Monte Carlo D."""
    G = spec["cdf"]
    c_p, c_lo, edges, D = _distance_curve(G, p, h)
    lam_p = math.exp(c_p)
    lam = np.exp(edges)
    V = lam * p - D
    D_at = functools.partial(_distance_at, edges=edges, D=D, G=G)
    j = int(np.argmax(V))
    opt = optimize.minimize_scalar(
        lambda c: -(math.exp(c) * p - D_at(c)),
        bounds=(edges[max(j - 1, 0)], edges[min(j + 1, len(edges) - 1)]),
        method="bounded",
        options={"xatol": 1e-11},
    )
    lam_star, v_star = math.exp(opt.x), -opt.fun
    value = float(spec["value"]())
    ident = lam * G(edges) - 1.0 + G(-edges)
    tail = math.exp(c_lo) * _at(G, c_lo)
    noise = spec["noise"]
    mc = _monte_carlo(noise, name, r, n_mc, seed, lam_p, D_at)
    res = {
        "sigma": noise.sigma,
        "k": noise.k,
        "c_p": c_p,
        "exp_c_p": lam_p,
        "lambda_star_numerical": lam_star,
        "rel_diff_lambda": abs(lam_star - lam_p) / lam_p,
        "max_bound_numerical": v_star,
        "certificate_value": value,
        "abs_diff_value": abs(v_star - value),
        "D_at_lambda_star": D_at(opt.x),
        "neglected_tail": tail,
        "max_abs_D_minus_identity": float(np.max(np.abs(D - ident))),
        "monte_carlo": mc,
    }
    return res, {"lambda": lam, "accuracy": lam * p, "D": D, "V": V}


def _captions(res, p, r, d, k, sig, sigma0, n_mc, checks) -> tuple[str, str]:
    lf, gs = res["l2-family"], res["gaussian"]
    headline = (
        f"p_A = {p:g}, l2 radius {r:g}: max_lambda = {lf['max_bound_numerical']:.6f} at "
        f"lambda* = {lf['lambda_star_numerical']:.5f} (exp(c_p) = {lf['exp_c_p']:.5f}) "
        f"for the l2 family (d={d}, k={k:g}); Gaussian {gs['max_bound_numerical']:.6f} "
        f"at {gs['lambda_star_numerical']:.5f}"
    )
    title = (
        f"Eq. (7) trade-off for one input: p_A = {p:g}, l2 attack radius r = {r:g}. Left: "
        f"l2 family d = {d}, k = {k:g}, sigma = {sig:.4f} (matched to sigma0 = {sigma0:g}); "
        f"right: Gaussian N(0, {sigma0:g}^2). Accuracy term lambda p_A, robustness term "
        f"D(lambda pi_0 || pi_delta*) = int_0^lambda G(log t) dt (quadrature of the exact "
        f"CDF G of the log likelihood ratio; x: Monte Carlo, {n_mc:,} samples) and their "
        f"difference. The maximiser is exp(c_p) (c_p the p-quantile of ell) and the maximum "
        f"is the "
        f"certified bound value(p, r) (maximiser: relative error "
        f"{checks['max_rel_diff_lambda_star']:.0e}; "
        f"maximum: absolute error {checks['max_abs_diff_value']:.0e}). Bottom: the "
        f"difference, zoomed. "
        f"Certified bounds: l2 family {lf['certificate_value']:.6f}, Gaussian "
        f"{gs['certificate_value']:.6f}."
    )
    return title, headline


def _checks(res: dict) -> dict:
    mc = [x for name in NOISES for x in res[name]["monte_carlo"]]
    return {
        "max_rel_diff_lambda_star": running_max(res[n]["rel_diff_lambda"] for n in NOISES),
        "max_abs_diff_value": running_max(res[n]["abs_diff_value"] for n in NOISES),
        "max_abs_D_minus_reflection_identity": running_max(
            res[n]["max_abs_D_minus_identity"] for n in NOISES
        ),
        "max_mc_deviation_in_se": running_max(
            abs(x["D_mc"] - x["D_quadrature"]) / max(x["se"], 1e-12) for x in mc
        ),
    }


@reproducible
def compute_tradeoff(
    *,
    quick: bool = False,
    seed: int = 0,
    p: float = 0.9,
    d: int = 3072,
    k: float = 500.0,
    sigma0: float = 0.5,
    r: float = 0.5,
    n_mc: int | None = None,
) -> dict:
    """The numbers of the eq. (7) figure (see :func:`tradeoff`), without drawing."""
    d = check_int("d", d, 2)
    if not 0 < p < 1:
        raise SmoothCertError(f"p must lie strictly between 0 and 1, got {p}")
    n_mc = check_int("n_mc", n_mc or (20_000 if quick else 200_000), 100)
    h = 0.1 if quick else 0.04
    sig = matched_sigma(sigma0, d, k)
    series, res = {}, {}
    for name, spec in _noise_specs(d, k, sig, sigma0, r, p).items():
        res[name], series[name] = _analyse(name, spec, p, r, h, n_mc, seed)
    checks = _checks(res)
    title, headline = _captions(res, p, r, d, k, sig, sigma0, n_mc, checks)
    settings = {
        "p": p,
        "d": d,
        "k": k,
        "sigma0": sigma0,
        "sigma_l2_family": sig,
        "r": r,
        "norm": "l2",
        "panel_width_in_log_lambda": h,
        "quadrature": "8-point Gauss-Legendre per panel",
        "n_mc": n_mc,
        "seed": seed,
        "quick": quick,
    }
    return figure_result("tradeoff", title, headline, settings, res, checks, series)


def _lambda_axis(ax, rr: dict, xmax: float) -> None:
    """The line at exp(c_p); a little room beyond the last Monte Carlo mark (at xmax), so it is
    not clipped."""
    ax.axvline(rr["exp_c_p"], color=GREY, ls=":", lw=1)
    ax.set_xlim(0, 1.04 * xmax)


def _draw_terms(ax, s: dict, rr: dict, m, xmax: float, n_mc: int, title: str) -> None:
    """Top panel: the accuracy term, D (quadrature and Monte Carlo) and their difference."""
    ax.plot(
        s["lambda"][m],
        s["accuracy"][m],
        color=OKABE_ITO["blue"],
        ls="--",
        label="accuracy term lambda p_A",
    )
    ax.plot(
        s["lambda"][m],
        s["D"][m],
        color=OKABE_ITO["vermillion"],
        label="robustness term D(lambda pi_0 || pi_delta*)",
    )
    ax.plot(s["lambda"][m], s["V"][m], color="black", lw=2, ls="-.", label="difference")
    mcx = [x for x in rr["monte_carlo"] if x["lambda"] <= xmax]
    ax.plot(
        [x["lambda"] for x in mcx],
        [x["D_mc"] for x in mcx],
        ls="none",
        marker="x",
        color=OKABE_ITO["vermillion"],
        ms=6,
        mew=1.3,
        label=f"D, Monte Carlo ({n_mc:,} samples)",
    )
    _lambda_axis(ax, rr, xmax)
    top = float(max(s["accuracy"][m].max(), s["D"][m].max()))
    # below 0: the marks at D ~ 0 stay whole; above: room for the legend
    ax.set_ylim(-0.04 * top, 1.4 * top)
    decorate(
        ax,
        None,
        "lambda p_A, D(lambda) and their difference",
        title,
        dict(fontsize=8, loc="upper left"),
    )


def _draw_difference(bx, s: dict, rr: dict, m, xmax: float) -> None:
    """Bottom panel: the difference zoomed, with value(p, r) and the numerical maximum."""
    bx.plot(
        s["lambda"][m],
        s["V"][m],
        color="black",
        lw=2,
        ls="-.",
        label="difference lambda p_A - D(lambda)",
    )
    bx.axhline(
        rr["certificate_value"],
        color=OKABE_ITO["bluish green"],
        lw=1.2,
        ls="--",
        label=f"value(p, r) = {rr['certificate_value']:.6f}",
    )
    _lambda_axis(bx, rr, xmax)
    bx.plot(
        [rr["lambda_star_numerical"]],
        [rr["max_bound_numerical"]],
        "o",
        color="black",
        label=f"numerical max at lambda = {rr['lambda_star_numerical']:.6f}",
    )
    bx.plot([], [], ls=":", color=GREY, label=f"exp(c_p) = {rr['exp_c_p']:.6f}")
    bx.set_ylim(0, 1.3 * rr["max_bound_numerical"])
    decorate(bx, "lambda", "lambda p_A - D(lambda)", None, dict(fontsize=7.5, loc="lower center"))


def draw_tradeoff(result: dict):
    """Per noise a column (terms above, difference below), and the CSV of the curves."""
    st, series, res = result["settings"], result["series"], result["results"]
    fig, axes = new_figure(2, width=5.2, height=6.6, nrows=2, height_ratios=(3, 2))
    for col, name in enumerate(NOISES):
        s, rr = series[name], res[name]
        xmax = 2.5 * rr["exp_c_p"]
        m = s["lambda"] <= xmax * 1.001
        title = (
            f"l2 family d={st['d']}, k={st['k']:g}, sigma={rr['sigma']:.4f}"
            if name == "l2-family"
            else f"Gaussian d={st['d']}, sigma = {st['sigma0']:g}"
        )
        _draw_terms(axes[col], s, rr, m, xmax, st["n_mc"], title)
        _draw_difference(axes[2 + col], s, rr, m, xmax)
    rows = []
    for name in NOISES:
        s = series[name]
        rows += [
            (name, a, b, c, e)
            for a, b, c, e in zip(s["lambda"], s["accuracy"], s["D"], s["V"], strict=True)
        ]
    return fig, ["noise", "lambda", "accuracy_term", "D", "difference"], rows


@reproducible
def tradeoff(
    outdir=None,
    *,
    quick: bool = False,
    seed: int = 0,
    p: float = 0.9,
    d: int = 3072,
    k: float = 500.0,
    sigma0: float = 0.5,
    r: float = 0.5,
    n_mc: int | None = None,
) -> dict:
    """Eq. (7) for one input with p_A = ``p`` against an l2 attack of radius ``r``: the
    accuracy term lambda p, the robustness term D(lambda pi_0 || pi_delta*) and their difference,
    for the l2 family (d, k, sigma matched to sigma0) and the Gaussian N(0, sigma0^2).
    D(lambda) = int_0^lambda G(log t) dt with G the exact CDF of ell (quadrature engine / normal),
    integrated numerically; the maximiser found numerically is compared with exp(c_p)
    (G(c_p) = p) and the maximum with the certificate's value(p, r). Checks also
    D(lambda) = lambda G(log lambda) - 1 + G(-log lambda) (reflection identity) and Monte Carlo
    estimates of D."""
    result = compute_tradeoff(quick=quick, seed=seed, p=p, d=d, k=k, sigma0=sigma0, r=r, n_mc=n_mc)
    return render(result, draw_tradeoff, outdir)
