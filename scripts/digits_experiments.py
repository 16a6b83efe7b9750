#!/usr/bin/env python
"""The paper's section 5 analyses, reproduced and measured on the embedded digits data (d = 64).

One command, resumable (rerunning skips finished work)::

    python scripts/digits_experiments.py            # from the repository root

1. Trains ``digits_cnn`` with Gaussian noise augmentation N(0, sigma0^2 I) for every sigma0 of
   ``CONFIG`` (:func:`smoothcert.training.train`, the demo's hyper-parameters; checkpoints go to
   ``runs/digits_experiments/models/`` which git ignores). A checkpoint with the same
   configuration is reused.
2. Certifies a fixed subset of the test split (every ``skip``-th image) through the real
   ``smoothcert certify`` code path (its parser and ``run``, as ``smoothcert demo`` does), one
   results file per (sigma0, noise, k, norm) under ``results/digits/noise_<sigma0>/``
   (``idx label predict radius correct time pA_lower`` + ``.config.json``):

   - l2: the Gaussian N(0, sigma0^2) and the l2 family of eq. (8) for every k of ``k_l2`` (the
     paper's Table 4 values k in {200, 500, 1000, 2000} at d = 3072, scaled to d = 64),
     sigma matched by the paper's rule sigma = sqrt((d-1)/(d-1-k)) sigma0;
   - l-infinity: the Gaussian through Theorem 3 (``--norm linf``: l2 radius / sqrt(d)) and the
     mixed-norm family of eq. (9) with ``k_linf`` (the paper's k = 250 scaled the same way).

   A complete results file whose configuration matches is skipped without loading anything; a
   partial one is resumed by ``certify`` itself.
3. Stores what the analysis needs beyond the results files (certificates only, no model):
   ``equal_pA_l2.tsv`` / ``equal_pA_linf.tsv`` (certified radius over a grid of p_A for every
   noise at matched sigma, in units of sigma0), ``equal_pA_linf_estimate.tsv`` (the l-inf
   radius the bound gives with exact probabilities, a sample estimate: see
   :func:`linf_estimate_table`) and ``counterfactual_{l2,linf}.tsv`` (per image:
   each non-Gaussian certificate applied to the Gaussian run's pA_lower), plus
   ``experiment.json`` (the configuration, the environment, the commands) and
   ``runtimes.json`` (wall time of every training and certification call).

``python scripts/results_report.py`` then writes ``docs/results.md`` from these files only.
``--jobs 2`` runs two certifications at a time (each process with one torch thread).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path("results/digits")
MODELS = Path("runs/digits_experiments/models")

DIM = 64
PAPER_DIM = 3072  # CIFAR-10, the paper's Tables 1, 3 and 4
# Table 4 (ablation over k) has k in {100, 200, 500, 1000, 2000}; k = 100 scales to k = 2 at
# d = 64 (sigma 1.6% above sigma0, practically the Gaussian) and is left out to keep the whole
# run within about 25 minutes of a shared 2-core CPU
PAPER_K_L2 = (200, 500, 1000, 2000)
PAPER_K_L2_LEFT_OUT = (100,)
PAPER_K_L2_MAIN = 500  # Table 1
PAPER_K_LINF = 250  # Table 3 / Figure 5


def scaled_k(k_paper: float) -> int:
    """The paper's k at d = 3072 with the same ratio k/d at d = 64, rounded."""
    return int(round(k_paper * DIM / PAPER_DIM))


CONFIG = {
    "dataset": "digits", "arch": "digits_cnn", "dim": DIM, "split": "test", "test_size": 360,
    "sigma0s": [0.12, 0.25, 0.5, 1.0],
    # training: the hyper-parameters of `smoothcert demo` (smoothcert.demo.FULL)
    "train": {"epochs": 20, "batch": 64, "lr": 0.05, "lr_step_size": 8, "gamma": 0.1,
              "momentum": 0.9, "weight_decay": 1e-4, "seed": 0},
    # certification (the paper's N0 and alpha; N = 10,000 instead of 100,000 for CPU time)
    "certify": {"skip": 12, "max": -1, "N0": 100, "N": 10_000, "alpha": 0.001, "batch": 2000,
                "seed": 0, "cert_samples": 1_000_000, "cert_failure_prob": 0.001},
    "paper": {"dim": PAPER_DIM, "k_l2": list(PAPER_K_L2), "k_l2_main": PAPER_K_L2_MAIN,
              "k_linf": PAPER_K_LINF, "k_l2_left_out": list(PAPER_K_L2_LEFT_OUT)},
    "k_l2": [scaled_k(k) for k in PAPER_K_L2],
    "k_l2_main": scaled_k(PAPER_K_L2_MAIN),
    "k_linf": scaled_k(PAPER_K_LINF),
    # table radii (chosen before the runs: l2 up to the largest Gaussian radius N = 10,000 can
    # certify at sigma0 = 1, 3.2; l-inf in units of 1/255, the paper's 2/255..12/255 and beyond
    # up to 3.2 * 1 / sqrt(64) = 0.4 ~ 102/255)
    "l2_radii": [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0],
    "linf_unit": 255,  # l-inf radii are given as multiples of 1/255 (8-bit pixel steps)
    "linf_radii_255": [0, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96],
    # grid of p_A for the certificate-strength comparison (the last value is added: the largest
    # pA_lower that N samples can give, alpha^(1/N))
    "p_grid": [0.55, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999],
    # l-inf: a point estimate (not a certificate) of the radius the mixed family's bound would
    # give with exact probabilities (no DKW margin, no radius grid), from fresh samples; the
    # same estimator on the Gaussian checks it against Theorem 3's closed form
    "linf_estimate": {"samples": 1_000_000, "seed": 1, "bisection_steps": 40},
}


# ----------------------------------------------------------------------------- runs
def runs(cfg: dict) -> list[dict]:
    """Every certification run, in priority order (the Table 1/3 settings first)."""
    out = []

    def add(sigma0, noise, k, norm):
        kk = f"_k{k:g}" if noise != "gaussian" else ""
        key = f"noise_{sigma0:g}/{noise}{kk}_{norm}"
        out.append({"key": key, "sigma0": sigma0, "noise": noise, "k": float(k), "norm": norm,
                    "outfile": str(RESULTS / f"{key}.tsv")})

    for sigma0 in cfg["sigma0s"]:
        add(sigma0, "gaussian", 0, "l2")
        add(sigma0, "l2-family", cfg["k_l2_main"], "l2")
        add(sigma0, "gaussian", 0, "linf")
        add(sigma0, "linf-mixed", cfg["k_linf"], "linf")
    for sigma0 in cfg["sigma0s"]:
        for k in cfg["k_l2"]:
            if k != cfg["k_l2_main"]:
                add(sigma0, "l2-family", k, "l2")
    return out


def checkpoint_path(sigma0: float) -> Path:
    return MODELS / f"noise_{sigma0:g}" / "checkpoint.pth.tar"


def expected_indices(cfg: dict) -> list[int]:
    from smoothcert.cli.common import select_indices

    c = cfg["certify"]
    return select_indices(cfg["test_size"], c["skip"], c["max"])


def _sigma(run: dict) -> float:
    from smoothcert.noises import make_noise

    return make_noise(run["noise"], DIM, k=run["k"], sigma0=run["sigma0"]).sigma


def status(run: dict, cfg: dict) -> str:
    """``done`` (complete, same configuration), ``partial``, ``missing`` or ``different: ...``."""
    from smoothcert.analysis import read_results

    out = Path(run["outfile"])
    cpath = Path(str(out) + ".config.json")
    if not out.exists() or not cpath.exists():
        return "missing"
    stored = json.loads(cpath.read_text())
    c = cfg["certify"]
    wanted = {"dataset": cfg["dataset"], "split": cfg["split"], "noise": run["noise"],
              "k": run["k"], "norm": run["norm"], "N0": c["N0"], "N": c["N"],
              "alpha": c["alpha"], "skip": c["skip"], "max": c["max"], "seed": c["seed"]}
    diff = [f"{key} {stored.get(key)!r} != {value!r}" for key, value in wanted.items()
            if stored.get(key) != value]
    if not math.isclose(stored.get("sigma", -1.0), _sigma(run), rel_tol=1e-12):
        diff.append(f"sigma {stored.get('sigma')!r} != {_sigma(run)!r}")
    if run["noise"] != "gaussian" and run["norm"] == "linf":
        cert = stored.get("certificate", {})
        if (cert.get("samples"), cert.get("failure_prob")) != (c["cert_samples"],
                                                               c["cert_failure_prob"]):
            diff.append("Monte Carlo certificate samples / failure probability")
    if diff:
        return "different: " + ", ".join(diff)
    try:
        rows = read_results(out)
    except Exception:  # noqa: BLE001 - a torn file is resumed by certify
        return "partial"
    return "done" if sorted(rows.idx.tolist()) == expected_indices(cfg) else "partial"


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def certify_run(run: dict, cfg: dict, device: str | None) -> dict:
    """One ``smoothcert certify`` call (through smoothcert.demo's helper). Returns timing."""
    import torch

    torch.set_num_threads(1)
    from smoothcert.demo import DemoConfig, Setting, _certify, _drop_stale

    c = cfg["certify"]
    demo_cfg = DemoConfig(skip=c["skip"], max=c["max"], n0=c["N0"], n=c["N"], alpha=c["alpha"],
                          cert_batch=c["batch"], seed=c["seed"], cert_samples=c["cert_samples"],
                          cert_failure_prob=c["cert_failure_prob"])
    setting = Setting(Path(run["key"]).name, run["noise"], run["k"], run["norm"], run["key"])
    out = Path(run["outfile"])
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint_path(run["sigma0"])
    if _drop_stale(out, ckpt):
        print(f"   {out}: partial file made with another checkpoint, recomputing", flush=True)
    before = 0
    if out.exists():
        before = max(0, len(out.read_text().splitlines()) - 1)
    t0 = time.time()
    _certify(ckpt, out, run["sigma0"], setting, demo_cfg, device)
    wall = time.time() - t0
    rows = max(0, len(out.read_text().splitlines()) - 1)
    return {"key": run["key"], "wall_s": round(wall, 2), "rows_computed": rows - before,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}


# ----------------------------------------------------------------------------- training
def train_models(cfg: dict, device, times: dict, sigma0s) -> None:
    from smoothcert.training import NoiseSpec, train

    t = cfg["train"]
    for sigma0 in sigma0s:
        outdir = checkpoint_path(sigma0).parent
        t0 = time.time()
        res = train(cfg["dataset"], cfg["arch"], outdir, NoiseSpec(sigma=sigma0),
                    epochs=t["epochs"], batch=t["batch"], lr=t["lr"],
                    lr_step_size=t["lr_step_size"], gamma=t["gamma"], momentum=t["momentum"],
                    weight_decay=t["weight_decay"], seed=t["seed"], device=device,
                    progress=False, verbose=False)
        wall = time.time() - t0
        if res.history:
            last = res.history[-1]
            print(f"trained sigma0 = {sigma0:g}: epochs {res.start_epoch + 1}-{res.epoch}, "
                  f"test accuracy under noise {last['test_acc']:.1f}% ({wall:.1f} s)",
                  flush=True)
            times.setdefault("training", {})[f"noise_{sigma0:g}"] = {
                "wall_s": round(wall, 2), "epochs": res.epoch,
                "final_test_acc_under_noise": round(last["test_acc"], 4),
                "final_train_acc": round(last["train_acc"], 4)}
        else:
            print(f"reusing {res.checkpoint} ({res.epoch} epochs)", flush=True)


# ----------------------------------------------------------------------------- certificates
def _fmt(x: float) -> str:
    return repr(float(x))


def equal_pa_tables(cfg: dict) -> None:
    """Certified radius / sigma0 over a grid of p, for each noise at matched sigma (sigma0 = 1;
    every radius scales linearly with sigma0, so the table holds for every sigma0)."""
    from smoothcert.certificates import get_certificate
    from smoothcert.noises import make_noise

    c = cfg["certify"]
    p_max = c["alpha"] ** (1.0 / c["N"])
    grid = [*cfg["p_grid"], p_max]
    specs = {"l2": [("gaussian", 0.0)] + [("l2-family", float(k)) for k in cfg["k_l2"]],
             "linf": [("gaussian", 0.0), ("linf-mixed", float(cfg["k_linf"]))]}
    for norm, noises in specs.items():
        lines = ["\t".join(["noise", "k", "sigma_over_sigma0", "method", "p", "radius"])]
        for name, k in noises:
            noise = make_noise(name, DIM, k=k, sigma0=1.0)
            cert = get_certificate(noise, norm, samples=c["cert_samples"],
                                   failure_prob=c["cert_failure_prob"], seed=c["seed"])
            for p in grid:
                r = cert.radius(p, exact=True) if cert.method == "quadrature" else cert.radius(p)
                lines.append("\t".join([name, f"{k:g}", _fmt(noise.sigma), cert.method, _fmt(p),
                                        _fmt(r)]))
        path = RESULTS / f"equal_pA_{norm}.tsv"
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path}", flush=True)


COUNTERFACTUAL_HEAD = [
    "sigma0", "noise", "k", "idx", "label", "predict_gauss", "pA_gauss", "radius_gauss",
    "radius_gauss_exact", "radius_family_at_pA_gauss", "radius_family_at_pA_gauss_exact",
    "predict_family", "pA_family", "radius_family", "radius_family_exact"]


def linf_estimate_table(cfg: dict) -> None:
    """``equal_pA_linf_estimate.tsv``: for the Gaussian and the mixed l-inf family (sigma0 = 1,
    matched sigma), the l-inf radius r at which the sample estimate of the exact threshold
    p*(r) = P(ell <= -median(ell)) (ell the log-likelihood ratio at the worst-case shift of
    Theorems 3/5) reaches p, by bisection over r. This is what the bound of eq. (5) certifies
    with exact probabilities: the Monte Carlo certificate of ``certify`` is this minus its DKW
    confidence margin and its radius grid. Not a certificate (no confidence level)."""
    import torch

    from smoothcert.noises import make_noise

    c, e = cfg["certify"], cfg["linf_estimate"]
    grid = [*cfg["p_grid"], c["alpha"] ** (1.0 / c["N"])]
    lines = ["\t".join(["noise", "k", "sigma_over_sigma0", "samples", "seed", "p",
                        "radius_estimate"])]
    for name, k in (("gaussian", 0.0), ("linf-mixed", float(cfg["k_linf"]))):
        noise = make_noise(name, DIM, k=k, sigma0=1.0)
        unit = noise.with_sigma(1.0)
        gen = torch.Generator().manual_seed(e["seed"])
        stats = unit.sample_stats(e["samples"], generator=gen)

        def p_star(r, unit=unit, stats=stats):
            ell = unit.log_ratio_from_stats(stats, r, "linf")
            return float((ell <= -ell.median()).double().mean())

        for p in grid:
            lo, hi = 0.0, 1.0
            while p_star(hi) < p:
                hi *= 2.0
            for _ in range(e["bisection_steps"]):
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if p_star(mid) < p else (lo, mid)
            lines.append("\t".join([name, f"{k:g}", _fmt(noise.sigma), str(e["samples"]),
                                    str(e["seed"]), _fmt(p), _fmt(lo * noise.sigma)]))
    path = RESULTS / "equal_pA_linf_estimate.tsv"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}", flush=True)


def counterfactual_tables(cfg: dict) -> None:
    """Per image and non-Gaussian noise: its certificate (matched sigma) applied to the Gaussian
    run's pA_lower on the same image (the certificate effect alone), next to the noise's own
    run (pA_lower and radius). Radii at full precision (``*_exact``, recomputed from pA_lower
    with the certificate ``certify`` uses) and as ``certify`` writes them (3 digits)."""
    from smoothcert.analysis import read_results
    from smoothcert.certificates import get_certificate
    from smoothcert.noises import make_noise

    c = cfg["certify"]
    head = COUNTERFACTUAL_HEAD
    by_key = {r["key"]: r for r in runs(cfg)}
    families = {"l2": [("l2-family", float(k)) for k in cfg["k_l2"]],
                "linf": [("linf-mixed", float(cfg["k_linf"]))]}

    def radius(cert, p):
        if p < 0.5:
            return 0.0
        if cert.method == "quadrature":
            return float(cert.radius(p, exact=True))
        return float(cert.radius(p))

    for norm, fams in families.items():
        lines = ["\t".join(head)]
        for sigma0 in cfg["sigma0s"]:
            gauss = read_results(by_key[f"noise_{sigma0:g}/gaussian_{norm}"]["outfile"])
            g_cert = get_certificate(make_noise("gaussian", DIM, sigma0=sigma0), norm)
            for name, k in fams:
                fam = read_results(by_key[f"noise_{sigma0:g}/{name}_k{k:g}_{norm}"]["outfile"])
                cert = get_certificate(make_noise(name, DIM, k=k, sigma0=sigma0), norm,
                                       samples=c["cert_samples"],
                                       failure_prob=c["cert_failure_prob"], seed=c["seed"])
                fam_rows = {int(i): j for j, i in enumerate(fam.idx)}
                for j, idx in enumerate(gauss.idx):
                    p = float(gauss["pA_lower"][j])
                    f = fam_rows[int(idx)]
                    pf = float(fam["pA_lower"][f])
                    r_cf = radius(cert, p)
                    lines.append("\t".join([
                        f"{sigma0:g}", name, f"{k:g}", str(int(idx)), str(int(gauss.label[j])),
                        str(int(gauss.predict[j])), _fmt(p), _fmt(gauss.radius[j]),
                        _fmt(radius(g_cert, p)), f"{r_cf:.3}", _fmt(r_cf),
                        str(int(fam.predict[f])), _fmt(pf), _fmt(fam.radius[f]),
                        _fmt(radius(cert, pf))]))
        path = RESULTS / f"counterfactual_{norm}.tsv"
        path.write_text("\n".join(lines) + "\n")
        print(f"wrote {path}", flush=True)


TABLE_HEADS = {
    "equal_pA_l2.tsv": "noise\tk\tsigma_over_sigma0\tmethod\tp\tradius",
    "equal_pA_linf.tsv": "noise\tk\tsigma_over_sigma0\tmethod\tp\tradius",
    "counterfactual_l2.tsv": "\t".join(COUNTERFACTUAL_HEAD),
    "counterfactual_linf.tsv": "\t".join(COUNTERFACTUAL_HEAD),
    "equal_pA_linf_estimate.tsv": "noise\tk\tsigma_over_sigma0\tsamples\tseed\tp\t"
                                  "radius_estimate",
}


def tables_current() -> bool:
    """Whether every certificate table exists with the header this script writes (a table of
    an older version of the script, or a missing one, is recomputed)."""
    for name, head in TABLE_HEADS.items():
        path = RESULTS / name
        if not path.exists() or path.read_text().split("\n", 1)[0] != head:
            return False
    return True


def environment() -> dict:
    import numpy
    import scipy
    import torch

    import smoothcert

    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": numpy.__version__, "scipy": scipy.__version__,
            "smoothcert": smoothcert.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads_per_process": 1}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1,
                    help="certification runs at a time, one process each (default: 1)")
    ap.add_argument("--device", default=None, help="torch device (default: cpu)")
    ap.add_argument("--only", default=None,
                    help="run only the runs whose key contains this text (for partial reruns)")
    ap.add_argument("--redo-tables", action="store_true",
                    help="recompute the certificate tables (equal_pA_*, counterfactual_*) even "
                         "when they exist in the current format")
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    import torch

    torch.set_num_threads(1)
    device = args.device or "cpu"
    cfg = CONFIG
    RESULTS.mkdir(parents=True, exist_ok=True)
    times_path = RESULTS / "runtimes.json"
    times = json.loads(times_path.read_text()) if times_path.exists() else {}
    start = time.time()

    todo = []
    for run in runs(cfg):
        if args.only and args.only not in run["key"]:
            continue
        st = status(run, cfg)
        if st == "done":
            continue
        if st.startswith("different"):
            raise SystemExit(f"{run['outfile']} exists with another configuration ({st[11:]}); "
                             "delete it (and its .config.json) to recompute")
        todo.append(run)
    print(f"{len(runs(cfg))} certification runs, {len(todo)} to do", flush=True)

    if todo:
        train_models(cfg, device, times, sorted({r["sigma0"] for r in todo}))
        times_path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")

    def record(res: dict) -> None:
        entry = times.setdefault("certify", {}).setdefault(res["key"], {"calls": []})
        entry["calls"].append({k: res[k] for k in ("wall_s", "rows_computed", "finished")})
        entry["wall_s"] = round(sum(c["wall_s"] for c in entry["calls"]), 2)
        times_path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
        print(f"certified {res['key']}: {res['rows_computed']} images in {res['wall_s']:.1f} s "
              f"({time.time() - start:.0f} s since start)", flush=True)

    if args.jobs <= 1:
        for run in todo:
            record(certify_run(run, cfg, device))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            futures = [pool.submit(certify_run, run, cfg, device) for run in todo]
            for fut in futures:
                record(fut.result())

    if all(status(r, cfg) == "done" for r in runs(cfg)):
        if todo or args.redo_tables or not tables_current():
            t0 = time.time()
            equal_pa_tables(cfg)
            linf_estimate_table(cfg)
            counterfactual_tables(cfg)
            times["tables"] = {"wall_s": round(time.time() - t0, 2),
                               "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            times_path.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")
        manifest = {"config": cfg, "runs": runs(cfg), "environment": environment(),
                    "command": "python scripts/digits_experiments.py",
                    "report_command": "python scripts/results_report.py"}
        old = RESULTS / "experiment.json"
        stale = (not old.exists()
                 or {k: v for k, v in json.loads(old.read_text()).items() if k != "environment"}
                 != {k: v for k, v in manifest.items() if k != "environment"})
        if todo or stale:
            old.write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"wrote {old}", flush=True)
        print(f"all runs done ({time.time() - start:.0f} s); now: "
              "python scripts/results_report.py", flush=True)
    else:
        print("some runs are not finished (see --only); rerun to continue", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
