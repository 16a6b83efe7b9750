"""Paper Figure 1: the density of ||z||_2 under eq. (8), d = 100, growing k at sigma = 1
against shrinking sigma at k = 0 (means matched); exact chi law."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from ..errors import SmoothCertError
from ..palette import color, linestyle
from .common import check_int, check_ks, figure_result, join_g, reproducible, running_max
from .plotting import decorate, new_figure, render


def chi_log_density(r, d: int, k: float, sigma: float) -> np.ndarray:
    """log p(r) of ||z||_2 under eq. (8): p(r) = r^(m-1) e^(-r^2 / (2 sigma^2)) /
    (2^(m/2 - 1) Gamma(m/2) sigma^m) with m = d - k (a scaled chi_m law, exactly normalised)."""
    m = d - k
    r = np.asarray(r, dtype=float)
    with np.errstate(divide="ignore"):
        x = np.log(r / sigma)
    out = (
        (m - 1) * x
        - 0.5 * (r / sigma) ** 2
        - (m / 2 - 1) * math.log(2)
        - special.gammaln(m / 2)
        - math.log(sigma)
    )
    if m == 1:
        out = np.where(r == 0, -0.5 * math.log(math.pi / 2) - math.log(sigma), out)
    return out


def chi_moments(d: int, k: float, sigma: float) -> tuple[float, float]:
    """Exact mean and standard deviation of ||z||_2 under eq. (8): sigma * chi_{d-k}."""
    m = d - k
    mean = sigma * math.sqrt(2) * math.exp(special.gammaln((m + 1) / 2) - special.gammaln(m / 2))
    return mean, math.sqrt(max(sigma**2 * m - mean**2, 0.0))


def _curves(d: int, ks: list[float], sigma: float) -> list[dict]:
    """Panel (a): sigma fixed, each k; panel (b): k = 0, sigma matching each mean of (a)."""
    base_mean, _ = chi_moments(d, 0.0, sigma)
    curves = [{"panel": "a", "k": k, "sigma": sigma} for k in ks]
    for k in ks:
        mean_k, _ = chi_moments(d, k, sigma)
        curves.append({"panel": "b", "k": 0.0, "sigma": sigma * mean_k / base_mean, "matches_k": k})
    for c in curves:
        c["mean"], c["std"] = chi_moments(d, c["k"], c["sigma"])
    return curves


def _integrate_curve(c: dict, d: int) -> None:
    """Record in ``c`` its mode and its numerical integral, mean and standard deviation."""
    from scipy import integrate

    c["mode"] = c["sigma"] * math.sqrt(max(d - c["k"] - 1, 0.0))

    def pdf(x):
        return float(np.exp(chi_log_density(x, d, c["k"], c["sigma"])))

    pts = [c["mean"] - 3 * c["std"], c["mean"], c["mean"] + 3 * c["std"]]
    pts = [p for p in pts if p > 0]
    upper = c["mean"] + 40 * c["std"] + 10 * c["sigma"]
    kw = dict(points=pts, limit=200, epsabs=1e-13, epsrel=1e-12)
    total = integrate.quad(pdf, 0, upper, **kw)[0]
    m1 = integrate.quad(lambda x: x * pdf(x), 0, upper, **kw)[0]
    m2 = integrate.quad(lambda x: (x - m1) ** 2 * pdf(x), 0, upper, **kw)[0]
    c["integral"], c["numerical_mean"], c["numerical_std"] = total, m1, math.sqrt(m2)


def _captions(curves: list[dict], d: int, ks: list[float], sigma: float) -> tuple[str, str]:
    a = [c for c in curves if c["panel"] == "a"]
    b = [c for c in curves if c["panel"] == "b"]
    last = len(ks) - 1
    headline = (
        f"k = {ks[0]:g} -> {ks[last]:g} moves the mean {a[0]['mean']:.3g} -> "
        f"{a[last]['mean']:.3g} with std {a[0]['std']:.3g} -> {a[last]['std']:.3g}; "
        f"sigma {b[0]['sigma']:.3g} -> {b[last]['sigma']:.3g} gives the same means "
        f"with std {b[0]['std']:.3g} -> {b[last]['std']:.3g}"
    )
    title = (
        f"Figure 1. Density of the radius ||z||_2 under eq. (8), d = {d}: p(r) ~ "
        f"r^(d-k-1) exp(-r^2/2 sigma^2). (a) sigma = {sigma:g}, k = "
        f"{join_g(ks)}; (b) k = 0, sigma shrunk to match the means of "
        f"(a). Bars: mean +- std (exact chi moments). Growing k moves the mass toward 0 "
        f"keeping std ~ {a[0]['std']:.2f}; shrinking sigma shrinks the std with the mean."
    )
    return title, headline


@reproducible
def compute_radius_density(
    *,
    quick: bool = False,
    d: int = 100,
    ks: Sequence[float] = (0, 50, 90, 98),
    sigma: float = 1.0,
    n_grid: int | None = None,
) -> dict:
    """The numbers of Figure 1 (see :func:`radius_density`), without drawing."""
    d = check_int("d", d, 2)
    ks = check_ks(ks, d)
    if not (math.isfinite(sigma) and sigma > 0):
        raise SmoothCertError(f"sigma must be a finite number > 0, got {sigma}")
    n_grid = n_grid or (301 if quick else 801)
    curves = _curves(d, ks, sigma)
    r_max = max(c["mean"] + 6 * c["std"] for c in curves)
    r = np.linspace(0.0, r_max, n_grid)
    series = {"r": r}
    for i, c in enumerate(curves):
        _integrate_curve(c, d)
        series[f"curve{i}"] = np.exp(chi_log_density(r, d, c["k"], c["sigma"]))
    title, headline = _captions(curves, d, ks, sigma)
    checks = {
        "max_abs_integral_minus_1": running_max(abs(c["integral"] - 1) for c in curves),
        "max_abs_mean_error": running_max(abs(c["numerical_mean"] - c["mean"]) for c in curves),
        "max_abs_std_error": running_max(abs(c["numerical_std"] - c["std"]) for c in curves),
    }
    settings = {"d": d, "ks": ks, "sigma": sigma, "n_grid": n_grid, "quick": quick}
    return figure_result(
        "radius_density", title, headline, settings, {"curves": curves}, checks, series
    )


def draw_radius_density(result: dict):
    """Panels (a) and (b) of Figure 1, and the CSV of the plotted densities."""
    st, curves, series = result["settings"], result["results"]["curves"], result["series"]
    d, r = st["d"], series["r"]
    fig, axes = new_figure(2, width=5.2, height=4.3)
    for ax, panel in zip(axes, "ab", strict=True):
        group = [(i, c) for i, c in enumerate(curves) if c["panel"] == panel]
        for j, (i, c) in enumerate(group):
            col = color(j)
            label = f"k = {c['k']:g}" if panel == "a" else f"sigma = {c['sigma']:.3g}"
            label += f": mean {c['mean']:.2f}, std {c['std']:.2f}"
            ax.plot(r, series[f"curve{i}"], color=col, lw=1.6, ls=linestyle(j), label=label)
            peak = float(np.exp(chi_log_density(c["mean"], d, c["k"], c["sigma"])))
            ax.errorbar(
                [c["mean"]],
                [peak * 1.04],
                xerr=[c["std"]],
                fmt="o",
                color=col,
                ms=4,
                capsize=3,
                lw=1.2,
            )
        ax.set_xlim(0, r[-1])
        ax.set_ylim(0, 1.45 * max(float(series[f"curve{i}"].max()) for i, _ in group))
        decorate(
            ax,
            "r = ||z||_2",
            "density of ||z||_2",
            f"(a) sigma = {st['sigma']:g}, growing k"
            if panel == "a"
            else "(b) k = 0, shrinking sigma (same means)",
            dict(fontsize=7.5, loc="upper right", ncol=2 if panel == "a" else 1),
        )
    header = ["r"] + [f"{c['panel']}_k{c['k']:g}_sigma{c['sigma']:.6g}" for c in curves]
    rows = zip(r, *[series[f"curve{i}"] for i in range(len(curves))], strict=True)
    return fig, header, rows


@reproducible
def radius_density(
    outdir=None,
    *,
    quick: bool = False,
    d: int = 100,
    ks: Sequence[float] = (0, 50, 90, 98),
    sigma: float = 1.0,
    n_grid: int | None = None,
) -> dict:
    """Paper Figure 1. (a) sigma fixed, k growing; (b) k = 0, sigma shrunk so that the mean of
    ||z||_2 equals that of each curve of (a). Checks: each density integrates to 1 and its
    numerical mean and standard deviation equal the chi-law moments."""
    result = compute_radius_density(quick=quick, d=d, ks=ks, sigma=sigma, n_grid=n_grid)
    return render(result, draw_radius_density, outdir)
