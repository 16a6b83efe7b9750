"""Theorem 4: the pure l-inf family's D(lambda pi_0 || pi_delta*) / lambda -> 1 as d grows with
the mode of ||z||_inf fixed at C r; the mixed family at matched scale."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from ..certificates.montecarlo import distance_estimate
from ..errors import SmoothCertError
from ..noises import LinfMixed, LinfPure
from ..palette import OKABE_ITO
from .common import check_int, figure_result, generator, join_g, reproducible
from .plotting import decorate, new_figure, render

#: the two rules for k as a function of d
RULES = {"k = 0": lambda d: 0.0, "k = (d-1)/2": lambda d: (d - 1) / 2}
_FAMILIES = (("linf-pure", "-"), ("linf-mixed", "--"))  # with their line styles


def mixed_linf_mode(d: int, k: float) -> float:
    """The mode u* of ||z||_inf / sigma under the mixed family eq. (9): the root of
    -k/u - u + (d-1) sqrt(2/pi) e^(-u^2/2) / erf(u/sqrt 2) (needs d - 1 - k > 0)."""
    if not d - 1 - k > 0:
        raise SmoothCertError(f"||z||_inf has its mode at 0 unless k < d - 1 (d={d}, k={k:g})")

    def f(u):
        return (
            -k / u
            - u
            + (d - 1)
            * math.sqrt(2 / math.pi)
            * math.exp(-u * u / 2)
            / special.erf(u / math.sqrt(2))
        )

    return optimize.brentq(f, 1e-9, 60.0, xtol=1e-14)


def _distances(dims, lambdas, C: float, r: float, n: int, seed: int) -> dict:
    """(rule, family) -> per d: k, sigma and D(lambda pi_0 || pi_delta*) / lambda per lambda,
    with both families' ||z||_inf mode at C r."""
    out = {}
    for rule, kfun in RULES.items():
        for d in dims:
            k = kfun(d)
            sig_pure = C * r / math.sqrt(d - 1 - k)
            sig_mixed = C * r / mixed_linf_mode(d, k)
            for fam, noise in (
                ("linf-pure", LinfPure(d, sigma=sig_pure, k=k)),
                ("linf-mixed", LinfMixed(d, sigma=sig_mixed, k=k)),
            ):
                st = noise.sample_stats(n, generator=generator(seed, "theorem4", fam, rule, d))
                ell = noise.log_ratio_from_stats(st, r, "linf").numpy()
                vals = [distance_estimate(ell, lam) / lam for lam in lambdas]
                out.setdefault((rule, fam), []).append(
                    {"d": d, "k": k, "sigma": noise.sigma, "D_over_lambda": vals}
                )
    return out


def _key(fam: str, rule: str, lam: float) -> str:
    return f"{fam}|{rule}|lambda={lam:g}"


def _captions(series, dims, lambdas, C, r, n, confidence, half, first99) -> tuple[str, str]:
    lam0 = lambdas[0]
    mid = dims[len(dims) // 2]
    pure, mixed = (
        series[_key("linf-pure", "k = 0", lam0)],
        series[_key("linf-mixed", "k = 0", lam0)],
    )
    headline = (
        f"pure l-inf (k=0, C={C:g}): D/lambda at lambda=1 reaches 0.99 at d = "
        f"{first99['k = 0']}; at d = {mid}: pure {pure[len(dims) // 2]:.3f} vs mixed "
        f"{mixed[len(dims) // 2]:.3f}; at d = {dims[-1]}: pure {pure[-1]:.3f}, mixed "
        f"{mixed[-1]:.3f} (band +-{half:.4f})"
    )
    title = (
        f"Theorem 4. Distance term D(lambda pi_0 || pi_delta*)/lambda at the vertex "
        f"delta* = (r,...,r), r = {r:g}, against d, lambda in "
        f"{{{join_g(lambdas)}}}. Pure l-inf family eq. (10) "
        f"(solid) with the mode of ||z||_inf at C r, C = {C:g}: sqrt(d-1-k) sigma = C r; "
        f"mixed family eq. (9) (dashed) with the same k and its ||z||_inf mode also at "
        f"C r. Bands: {confidence:.0%} Hoeffding, {n:,} samples per point. The pure "
        f"family's D/lambda -> 1 (certification becomes vacuous); the mixed family "
        f"degrades much more slowly. (d = 1 is excluded: the mode is 0 there.)"
    )
    return title, headline


def _check_scale(C: float, r: float, confidence: float) -> None:
    if not (C > 0 and r > 0):
        raise SmoothCertError(f"C and r must be > 0, got C={C}, r={r}")
    if not 0 < confidence < 1:
        raise SmoothCertError(f"confidence must lie in (0, 1), got {confidence}")


@reproducible
def compute_theorem4(
    *,
    quick: bool = False,
    seed: int = 0,
    C: float = 10.0,
    r: float = 1.0,
    dims: Sequence[int] | None = None,
    lambdas: Sequence[float] = (1.0, 2.0),
    n_samples: int | None = None,
    confidence: float = 0.99,
) -> dict:
    """The numbers of the Theorem 4 figure (see :func:`theorem4`), without drawing."""
    dims = list(
        dims or ((2, 5, 10, 20, 50, 100) if quick else (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000))
    )
    for d in dims:
        check_int("d", d, 2)
    n = check_int("n_samples", n_samples or (20_000 if quick else 100_000), 100)
    _check_scale(C, r, confidence)
    lambdas = [float(x) for x in lambdas]
    half = math.sqrt(math.log(2 / (1 - confidence)) / (2 * n))  # on D / lambda
    results, series = {}, {}
    for (rule, fam), lst in _distances(dims, lambdas, C, r, n, seed).items():
        results[f"{fam} {rule}"] = lst
        for il, lam in enumerate(lambdas):
            series[_key(fam, rule, lam)] = np.array([e["D_over_lambda"][il] for e in lst])
    first99, mono = {}, {}
    for rule in RULES:
        tv = series[_key("linf-pure", rule, lambdas[0])]
        hit = [d for d, v in zip(dims, tv, strict=True) if v >= 0.99]
        first99[rule] = hit[0] if hit else None
    for rule in RULES:
        mono[rule] = bool(np.all(np.diff(series[_key("linf-pure", rule, lambdas[0])]) > -2 * half))
    title, headline = _captions(series, dims, lambdas, C, r, n, confidence, half, first99)
    settings = {
        "C": C,
        "r": r,
        "dims": dims,
        "k_rules": list(RULES),
        "lambdas": lambdas,
        "sigma_pure": "C r / sqrt(d - 1 - k)",
        "sigma_mixed": "C r / u*(d, k), u* the mode of ||z||_inf/sigma (eq. 9)",
        "n_samples": n,
        "seed": seed,
        "band": f"Hoeffding, two-sided "
        f"{confidence:g}: D/lambda +- sqrt(log(2/(1-conf))/(2n)) = {half:.5f}",
        "quick": quick,
    }
    return figure_result(
        "theorem4",
        title,
        headline,
        settings,
        {"points": results, "pure_first_d_with_tv_ge_0.99": first99},
        {"pure_nondecreasing_within_2_bands": mono, "band_half_width": half},
        series,
    )


def draw_theorem4(result: dict):
    """One panel per rule for k, and the CSV of the D/lambda curves."""
    st, series, half = result["settings"], result["series"], result["checks"]["band_half_width"]
    dims = st["dims"]
    fig, axes = new_figure(2, width=5.2, height=4.4)
    lam_colors = [OKABE_ITO[c] for c in ("reddish purple", "orange", "sky blue", "black")]
    for ax, rule in zip(axes, st["k_rules"], strict=True):
        for il, lam in enumerate(st["lambdas"]):
            col = lam_colors[il % len(lam_colors)]
            for fam, ls in _FAMILIES:
                y = series[_key(fam, rule, lam)]
                pure = fam == "linf-pure"
                ax.plot(
                    dims,
                    y,
                    ls=ls,
                    marker="o" if pure else "s",
                    ms=3.5,
                    mfc=col if pure else "white",
                    color=col,
                    label=f"{'pure' if pure else 'mixed'}, lambda = {lam:g}",
                )
                ax.fill_between(
                    dims,
                    np.clip(y - half, 0, 1),
                    np.clip(y + half, 0, 1),
                    color=col,
                    alpha=0.18,
                    lw=0,
                )
            if lam > 1:
                ax.axhline(1 - 1 / lam, color=col, lw=0.7, ls=":")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        decorate(
            ax,
            "dimension d",
            "D(lambda pi_0 || pi_delta*) / lambda",
            f"{rule}, C = {st['C']:g}, r = {st['r']:g}  (dotted: 1 - 1/lambda floor)",
            dict(fontsize=7.5, loc="lower right"),
        )
    keys = list(series)
    rows = zip(dims, *[series[k] for k in keys], strict=True)
    return fig, ["d"] + keys, rows


@reproducible
def theorem4(
    outdir=None,
    *,
    quick: bool = False,
    seed: int = 0,
    C: float = 10.0,
    r: float = 1.0,
    dims: Sequence[int] | None = None,
    lambdas: Sequence[float] = (1.0, 2.0),
    n_samples: int | None = None,
    confidence: float = 0.99,
) -> dict:
    """Theorem 4: with the pure l-inf family eq. (10) and (k, sigma) such that the mode of
    ||z||_inf is C r (sqrt(d-1-k) sigma = C r), D(lambda pi_0 || pi_delta*) / lambda -> 1 as d
    grows (delta* = (r, ..., r)). Two rules for k: k = 0 and k = (d-1)/2. Contrast: the mixed
    family eq. (9) with the same k and sigma chosen so that its ||z||_inf has the same mode
    C r. Monte Carlo with Hoeffding bands (two-sided, level ``confidence``)."""
    result = compute_theorem4(
        quick=quick,
        seed=seed,
        C=C,
        r=r,
        dims=dims,
        lambdas=lambdas,
        n_samples=n_samples,
        confidence=confidence,
    )
    return render(result, draw_theorem4, outdir)
