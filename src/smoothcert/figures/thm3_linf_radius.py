"""Theorem 3: the l-inf radius of the l2 family (and the Gaussian) equals its l2 radius divided by
sqrt(d); independent Monte Carlo check at the vertex (r, ..., r)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from ..certificates import get_certificate
from ..certificates.exact_l2 import L2FamilyQuadrature
from ..noises import Gaussian, L2Family, matched_sigma
from ..palette import FAMILY_COLORS, OKABE_ITO
from .common import (
    check_int,
    figure_result,
    generator,
    private_certificate_cache,
    reproducible,
    running_max,
)
from .plotting import decorate, new_figure, render

P_MARKS = (0.6, 0.75, 0.9, 0.99)


def _mc_vertex_log_ratios(noise, r: float, n: int, gen, chunk: int = 4096) -> np.ndarray:
    """Samples of ell = log(pi_delta/pi_0)(z) evaluated on full d-dimensional vectors z at the
    vertex delta = (r, ..., r) (no symmetry reduction)."""
    delta = noise.worst_case_delta(r, "linf").to(torch.float64)
    parts = []
    for start in range(0, n, chunk):
        z = noise.sample(min(chunk, n - start), gen, dtype=torch.float64)
        parts.append(noise.log_ratio(z, delta).numpy())
    return np.concatenate(parts)


def _exact_l2_law(noise, d: int, k: float, s_unit: float):
    """The exact law of ell for the l2 attack at sqrt(d) r (the theorem's other side), at unit
    sigma and shift ``s_unit``: its CDF G and the threshold p*(r) = G(-median)."""
    if isinstance(noise, Gaussian):

        def G(c):
            return stats.norm.cdf((np.asarray(c) + s_unit**2 / 2) / s_unit)

        return G, float(stats.norm.cdf(s_unit))
    eng = L2FamilyQuadrature(d, k)

    def G(c):
        return eng.cdf(c, s_unit)

    return G, float(eng.threshold(np.array([s_unit]))[0])


def _mark(noise, c_inf, c_2, d: int, k: float, pm: float, seed: int, n_mc: int) -> dict:
    """At p_A = ``pm``: both radii (exact refinement), and the Monte Carlo threshold at the
    vertex with the Kolmogorov distance between the vertex samples of ell and the exact law."""
    kw = {"exact": True} if c_inf.method == "quadrature" else {}
    ri = float(c_inf.radius(pm, **kw))
    r2 = float(c_2.radius(pm, **kw)) / math.sqrt(d)
    ell = _mc_vertex_log_ratios(noise, ri, n_mc, generator(seed, "theorem3", noise.name, d, pm))
    p_mc = float(np.mean(ell <= -np.median(ell)))
    G, p_ex = _exact_l2_law(noise, d, k, math.sqrt(d) * ri / noise.sigma)
    # Kolmogorov distance on 99 sample quantiles (in units of the DKW band, by the caller)
    grid = np.quantile(ell, np.linspace(0.01, 0.99, 99))
    ks_dist = float(
        np.max(np.abs(np.searchsorted(np.sort(ell), grid, side="right") / n_mc - G(grid)))
    )
    return {
        "p": pm,
        "radius_linf": ri,
        "radius_l2_over_sqrt_d": r2,
        "mc_threshold_at_vertex": p_mc,
        "exact_l2_threshold_at_sqrt_d_r": p_ex,
        "ks_distance_vertex_vs_exact": ks_dist,
    }


def _noise_entry(noise, d: int, k: float, p: np.ndarray, seed: int, n_mc: int):
    """One noise at one d: its entry of ``per_d`` and both radius curves over ``p``."""
    c_inf = get_certificate(noise, "linf")
    c_2 = get_certificate(noise, "l2")
    r_inf = np.asarray(c_inf.radius(p), dtype=float)
    r_2 = np.asarray(c_2.radius(p), dtype=float) / math.sqrt(d)
    marks = [_mark(noise, c_inf, c_2, d, k, pm, seed, n_mc) for pm in P_MARKS]
    entry = {
        "noise": noise.name,
        "k": noise.k,
        "sigma": noise.sigma,
        "max_abs_diff": float(np.max(np.abs(r_inf - r_2))),
        "radius_at_p": marks,
        "method": c_inf.method,
    }
    return entry, r_inf, r_2


def _captions(per_d, dims, sigma0, n_mc, worst_table, worst_exact, worst_mc):
    l2_09 = {
        e["d"]: next(m["radius_linf"] for m in e["noises"][0]["radius_at_p"] if m["p"] == 0.9)
        for e in per_d
    }
    headline = (
        f"l-inf radius == l2 radius / sqrt(d) to {max(worst_table, worst_exact):.1e} "
        f"for d = {', '.join(map(str, dims))}; law of ell at the vertex (Monte Carlo) vs "
        f"exact law at sqrt(d) r: KS <= {worst_mc:.2f} x the simultaneous 99% DKW band; "
        f"l2-family "
        f"l-inf radius at p = 0.9: " + ", ".join(f"{v:.4g} (d={d})" for d, v in l2_09.items())
    )
    title = (
        f"Theorem 3. l-inf certified radius vs p_A for the l2 family (k = d/2, sigma "
        f"matched to sigma0 = {sigma0:g}) and the Gaussian N(0, {sigma0:g}^2): from the "
        f"l-inf certificate (solid) and as l2 radius / sqrt(d) (dashed) - the curves "
        f"coincide (max difference {worst_table:.1e}). Markers: Monte Carlo threshold "
        f"p*(r) = G(-median ell) from {n_mc:,} full d-dimensional draws at the vertex "
        f"delta = (r,...,r), independent of the symmetry reduction (the law of ell there "
        f"matches the exact law at sqrt(d) r: KS <= {worst_mc:.2f} x the simultaneous 99% "
        f"DKW band). The matched l2 family and the Gaussian give nearly equal radii. "
        f"The radius shrinks like 1/sqrt(d)."
    )
    return title, headline


@reproducible
def compute_theorem3(
    *,
    quick: bool = False,
    seed: int = 0,
    dims: Sequence[int] | None = None,
    sigma0: float = 0.5,
    n_mc: int | None = None,
) -> dict:
    """The numbers of the Theorem 3 figure (see :func:`theorem3`), without drawing."""
    dims = list(dims or ((10, 100) if quick else (10, 100, 1000)))
    for d in dims:
        check_int("d", d, 2)
    n_mc = check_int("n_mc", n_mc or (4_000 if quick else 20_000), 100)
    p = np.linspace(0.5, 0.999, 60 if quick else 300)[1:]
    # simultaneous 99% DKW band over every (d, noise, mark) comparison (Bonferroni)
    n_cmp = 2 * len(dims) * len(P_MARKS)
    dkw = math.sqrt(math.log(2 * n_cmp / 0.01) / (2 * n_mc))
    series, per_d = {"p": p}, []
    with private_certificate_cache():
        for d in dims:
            k = d / 2
            entries = []
            for noise in (
                L2Family(d, sigma=matched_sigma(sigma0, d, k), k=k),
                Gaussian(d, sigma=sigma0),
            ):
                entry, r_inf, r_2 = _noise_entry(noise, d, k, p, seed, n_mc)
                series[f"{noise.name}_d{d}_linf"] = r_inf
                series[f"{noise.name}_d{d}_l2_over_sqrt_d"] = r_2
                entries.append(entry)
            per_d.append({"d": d, "noises": entries})
    entries = [e for pd in per_d for e in pd["noises"]]
    marks = [m for e in entries for m in e["radius_at_p"]]
    worst_table = running_max(e["max_abs_diff"] for e in entries)
    worst_exact = running_max(abs(m["radius_linf"] - m["radius_l2_over_sqrt_d"]) for m in marks)
    worst_mc = running_max(m["ks_distance_vertex_vs_exact"] / dkw for m in marks)
    title, headline = _captions(per_d, dims, sigma0, n_mc, worst_table, worst_exact, worst_mc)
    settings = {
        "dims": dims,
        "k": "d/2",
        "sigma0": sigma0,
        "sigma_l2_family": "sqrt((d-1)/(d-1-k)) sigma0",
        "p_grid": [float(p[0]), float(p[-1]), int(p.size)],
        "p_marks": P_MARKS,
        "n_mc": n_mc,
        "seed": seed,
        "quick": quick,
        "certificates": "get_certificate(noise, norm).radius(p) (table lookup; "
        "exact=True refinement at the marks)",
    }
    checks = {
        "max_abs_diff_table": worst_table,
        "max_abs_diff_exact": worst_exact,
        "max_ks_vertex_vs_exact_in_dkw_bands": worst_mc,
        "dkw_band_99_simultaneous": dkw,
    }
    return figure_result("theorem3", title, headline, settings, {"per_d": per_d}, checks, series)


def _draw_noise(ax, p, series: dict, d: int, e: dict) -> None:
    """One noise's l-inf radius curve, the l2 radius / sqrt(d) over it, and its vertex marks."""
    key = f"{e['noise']}_d{d}"
    gauss = e["noise"] == "gaussian"
    col = FAMILY_COLORS[e["noise"]]
    lab = (
        f"Gaussian sigma={e['sigma']:g}"
        if gauss
        else f"l2 family k={e['k']:g}, sigma={e['sigma']:.3g}"
    )
    ax.plot(p, series[key + "_linf"], color=col, lw=2.6, alpha=0.55, label=lab + ": l-inf cert.")
    # the overlay in a light colour, so that it shows on the thick line beneath
    ax.plot(
        p,
        series[key + "_l2_over_sqrt_d"],
        lw=1.0,
        ls="--",
        color=OKABE_ITO["sky blue" if gauss else "orange"],
        label="  l2 radius / sqrt(d)",
    )
    ax.plot(
        [m["mc_threshold_at_vertex"] for m in e["radius_at_p"]],
        [m["radius_linf"] for m in e["radius_at_p"]],
        ls="none",
        marker="+" if gauss else "x",
        ms=8,
        mew=1.4,
        color=col,
        label="  MC p*(r) at vertex",
    )


def draw_theorem3(result: dict):
    """One panel per d, and the CSV of the radius curves."""
    per_d, series = result["results"]["per_d"], result["series"]
    p = series["p"]
    fig, axes = new_figure(len(per_d), width=4.3, height=4.2)
    for ax, entry in zip(axes, per_d, strict=True):
        for e in entry["noises"]:
            _draw_noise(ax, p, series, entry["d"], e)
        ax.set_xlim(0.5, 1.01)
        ax.set_ylim(bottom=0)
        decorate(
            ax,
            "p_A (lower bound)",
            "certified l-inf radius",
            f"d = {entry['d']}",
            dict(fontsize=6.5, loc="upper left"),
        )
    keys = [k for k in series if k != "p"]
    rows = zip(p, *[series[k] for k in keys], strict=True)
    return fig, ["p"] + keys, rows


@reproducible
def theorem3(
    outdir=None,
    *,
    quick: bool = False,
    seed: int = 0,
    dims: Sequence[int] | None = None,
    sigma0: float = 0.5,
    n_mc: int | None = None,
) -> dict:
    """Theorem 3: the l-inf certified radius of the l2 family equals its l2 radius at
    sqrt(d) r, i.e. R_inf(p) = R_2(p) / sqrt(d). For each d, the l2 family with k = d/2 and
    sigma matched to N(0, sigma0^2) (sigma = sqrt((d-1)/(d-1-k)) sigma0), and the Gaussian
    N(0, sigma0^2): R_inf from the l-inf certificate and R_2 / sqrt(d) from the l2 certificate
    (they must coincide), plus an independent Monte Carlo threshold p*(r) computed on full
    d-dimensional samples at the vertex (r, ..., r)."""
    result = compute_theorem3(quick=quick, seed=seed, dims=dims, sigma0=sigma0, n_mc=n_mc)
    return render(result, draw_theorem3, outdir)
