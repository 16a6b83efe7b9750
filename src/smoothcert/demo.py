"""``smoothcert demo``: the project's main job, end to end on the embedded digits data (d = 64).

1. Train (or reuse, configuration-checked, see :mod:`smoothcert.training`) a ``digits_cnn`` with
   Gaussian noise augmentation N(0, sigma0^2 I) for each sigma0 of the configuration.
2. Certify a fixed subset of the test split with :func:`smoothcert.jobs.certify_file` (the job
   of ``smoothcert certify``), writing the reference's result files (``certify --adaptive
   --radii`` over the table's radii: sequential certification, each input stops as soon as its
   grid radius is decided; ``.tsv`` + ``.config.json``) with

   (a) the Gaussian N(0, sigma0^2) against l2 attacks (Cohen et al.'s certificate);
   (b) the l2 family of eq. (8) with shape ``k_l2``, sigma matched by the paper's rule
       sigma = sqrt((d-1)/(d-1-k)) sigma0, against l2 attacks (exact quadrature certificate);
   (c) the Gaussian against l-infinity attacks (Theorem 3: the l2 radius / sqrt(d)), derived
       from run (a) without sampling again: the same pA_lower, its l-inf radius
       sigma Phi^-1(pA_lower) / sqrt(d) rounded toward zero;
   (d) the mixed l-infinity family of eq. (9) with shape ``k_linf``, sigma matched the same
       way, against l-infinity attacks (Monte Carlo certificate table, Theorem 5).

3. Print the certified-accuracy tables (markdown) for l2 and l-infinity radii, the confidence of
   the certificates, and write the tables (``tables.md``) and the plots (PNG) with
   :mod:`smoothcert.analysis`.

Everything is seeded (training streams, certification noise per input, the Monte Carlo
certificate table) and torch runs with one CPU thread (``threads``; the trained weights depend
on the thread count), so the demo is deterministic on a given device type, whatever the number
of cores; rerunning it reuses the trained models and the finished result files (both are
resumable and checked against their configuration). ``--quick`` runs a tiny version of the
same pipeline (for the tests).

Choices (full demo)
-------------------
- One model, sigma0 = 0.25 (20 epochs, SGD lr 0.05 divided by 10 every 8 epochs, batch 64):
  about 95% test accuracy under N(0, 0.25^2) noise. A sigma0 = 0.5 model reached only ~77%
  (mean pA_lower 0.74) and certified less than the 0.25 model at every radius up to 0.75, so the
  certification budget goes to more images instead (``sigma0s`` takes several values).
- Certification: every 6th test image (60 of the 360), N0 = 100, sequential with a budget of
  N = 10,000 samples per input, alpha = 0.001 (about 3,000 forward passes per input instead of
  10,100). With N = 10,000 the largest pA_lower is about 0.001^(1/N) = 0.99931, i.e. a
  Gaussian l2 radius of at most 3.2 sigma0 = 0.80; the l2 grid 0, 0.2, ..., 0.8 runs to 0.8 and
  the l-inf grid is the l2 grid / 8 = / sqrt(d), so that the Gaussian rows of the two tables
  coincide (Theorem 3). (Until issue 13 the demo certified every 3rd image with fixed N on a
  grid of step 0.1, and sampled the Gaussian l-inf run again: 3.5 min on 2 idle cores.)
- Speed: **one torch CPU thread** (``threads = 1``; the caller's setting is restored). The
  network is tiny (8x8 inputs), so a second intra-op thread gains little and, on a busy
  machine, its threads wait for each other. Measured cold (no model, no certificate table), on
  the project's shared 2-core machine at load average ~4: 2 threads (the torch default used
  until then) 186 s wall / 133 s CPU (user + sys); 1 thread 53 s wall / 36 s CPU (other runs:
  2 threads 150 s / 119 s under cProfile, load rising from 0.2 to 4; 1 thread 44 s / 35 s at
  load 3.5, from `smoothcert demo` itself). The one-thread CPU time
  bounds the wall time on an idle machine: about 35 s. Its split: training 4 s (20 epochs),
  the three certify runs 27 s (sampling and forward passes ~7 s each, the l2 family's
  quadrature table 1.5 s, the Monte Carlo table of 1M samples 4 s), imports, tables and plots
  ~4 s. A forward batch of 2,000 images took 115 ms on 1 thread and 164 ms on 2 (best of 40,
  same load). Nothing of the message had to go: images, N and the table's samples are as
  before (a 200,000-sample table would save ~3 s but cost radius, see below).
- k values, by a quick experiment on the sigma0 = 0.25 model (every 6th test image, N = 5,000):

  * l2 family, k in {4, 8, 16, 32}: certified accuracies within one image of the Gaussian's up
    to r = 0.6; at r = 0.7, 5% (Gaussian), 8% (k = 4, 8), 10% (k = 16), 8% (k = 32); k = 16
    loses 2 points at r = 0.5 and k = 32 2-5 points at r = 0.3-0.6 (pA drops as k grows while
    the certificate gains at high pA:
    radius(pA = 0.99931) = 0.7996 for the Gaussian, 0.8065 for k = 16, 0.8127 for k = 32).
    We use **k_l2 = 16** (= d/4; the paper's CIFAR-10 ratio 500/3072 would give k ~ 10).
  * mixed l-inf family, k in {1, 2, 4, 8}: k = 1 and 2 tie (one image apart at one radius),
    k = 4 and 8 lose up to 7 more points; all are 5-10 points below the Gaussian (Theorem 3)
    at l-inf radii 0.06-0.08. We use **k_linf = 2** (the paper's
    CIFAR-10 ratio 250/3072 would give k ~ 5). At d = 64, with sigma matched, the exact
    certificate of the mixed family is the Gaussian's for small k and smaller for large k, and
    its Monte Carlo table (1M samples, DKW band at failure probability 0.001) costs ~15% of the
    radius at pA near 1: the l-inf gains of the paper need a high dimension (d = 3072 there).
    The DKW margin grows as 1/sqrt(samples); measured radius at pA = 0.99 / 0.999 / 0.99931
    (the largest pA_lower at N = 10,000): 0.0692 / 0.0832 / 0.0845 with 1M samples, 0.0673 /
    0.0781 / 0.0788 with 300,000, 0.0667 / 0.0762 / 0.0769 with 200,000, 0.0642 / 0.0730 /
    0.0730 with 100,000 (Gaussian, Theorem 3: 0.0727 / 0.0966 / 0.1000); the demo's certified
    accuracy at r = 0.075 falls from 0.22 (1M) to 0.10 (200,000) (with the model trained on 2
    threads: 0.23, 0.13 with 300,000, 0.08 with 200,000) and 100,000 certifies nothing at
    0.075. The 1M table takes 4 s of CPU on one thread: it stays.
"""

from __future__ import annotations

import json
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import SmoothCertError

DATASET = "digits"
ARCH = "digits_cnn"
DIM = 64


@dataclass(frozen=True)
class DemoConfig:
    """Everything that determines the demo's results."""

    sigma0s: tuple[float, ...] = (0.25,)
    # training (the same for --quick, whose models are a prefix of the full ones)
    epochs: int = 20
    batch: int = 64
    lr: float = 0.05
    lr_step_size: int = 8
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    seed: int = 0
    # certification
    skip: int = 6
    max: int = -1
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    cert_batch: int = 2_000
    #: sequential certification (``certify --adaptive --radii`` over the table's radii): each
    #: input stops as soon as its grid radius is decided (--N is the budget)
    adaptive: bool = True
    cert_samples: int = 1_000_000
    cert_failure_prob: float = 0.001
    #: torch CPU threads while the demo runs (restored afterwards): the trained weights depend
    #: on the thread count (reductions in another order), one thread makes them the same on
    #: every machine; see the module notes for the measured speed
    threads: int = 1
    k_l2: float = 16.0
    k_linf: float = 2.0
    l2_radii: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8)
    linf_radii: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1)
    results_dir: str = "results"


FULL = DemoConfig()
QUICK = replace(
    FULL,
    sigma0s=(0.25,),
    epochs=2,
    skip=60,
    n0=50,
    n=500,
    cert_batch=550,
    cert_samples=20_000,
    results_dir="results-quick",
)


@dataclass
class Setting:
    """One certification run: a noise against a threat model, for one trained model."""

    key: str  # file stem
    noise: str
    k: float
    norm: str
    label: str
    #: key of the l2 run this one is derived from (Theorem 3) instead of sampling again
    derived_from: str | None = None


@dataclass
class DemoResult:
    outdir: Path
    checkpoints: dict[float, Path] = field(default_factory=dict)
    results: dict[tuple[float, str], Path] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)  # norm -> markdown
    accuracies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    plots: dict[str, Path] = field(default_factory=dict)
    tables_file: Path | None = None
    confidence: str = ""
    seconds: float = 0.0


def settings(cfg: DemoConfig) -> list[Setting]:
    kl2, kli = f"{cfg.k_l2:g}", f"{cfg.k_linf:g}"
    return [
        Setting("gaussian_l2", "gaussian", 0.0, "l2", "Gaussian"),
        Setting(f"l2-family_k{kl2}_l2", "l2-family", cfg.k_l2, "l2", f"l2 family k={kl2}"),
        Setting(
            "gaussian_linf", "gaussian", 0.0, "linf", "Gaussian (Thm 3)", derived_from="gaussian_l2"
        ),
        Setting(f"linf-mixed_k{kli}_linf", "linf-mixed", cfg.k_linf, "linf", f"linf-mixed k={kli}"),
    ]


def _drop_stale(outfile: Path, checkpoint: Path) -> bool:
    """Remove a results file made with another checkpoint (e.g. a model trained further since):
    ``certify`` would refuse to resume it. Returns True when something was removed."""
    from .models import file_sha256
    from .results import config_path

    cfg_path = config_path(outfile)
    if not cfg_path.exists():
        return False
    try:
        stored = json.loads(cfg_path.read_text()).get("checkpoint_sha256")
    except (OSError, ValueError, AttributeError):
        stored = None
    if stored == file_sha256(checkpoint):
        return False
    outfile.unlink(missing_ok=True)
    cfg_path.unlink()
    return True


def _run_options(s: Setting, cfg: DemoConfig) -> dict:
    """The options of :func:`smoothcert.jobs.certify_file` that ``cfg`` sets for the run
    ``s`` (those its checks look at): sequential with the table's radii as the grid when
    ``cfg.adaptive``."""
    radii = None
    if cfg.adaptive:
        radii = [float(r) for r in (cfg.l2_radii if s.norm == "l2" else cfg.linf_radii)]
    return dict(
        n0=cfg.n0,
        n=cfg.n,
        alpha=cfg.alpha,
        batch=cfg.cert_batch,
        skip=cfg.skip,
        max=cfg.max,
        seed=cfg.seed,
        cert_samples=cfg.cert_samples,
        cert_failure_prob=cfg.cert_failure_prob,
        adaptive=cfg.adaptive,
        radii=radii,
    )


def _check_runs(root: Path, cfg: DemoConfig) -> None:
    """The checks of :func:`smoothcert.jobs.certify_file` on every certification run of
    ``cfg``, before anything is trained (a bad value: one line, not after the training)."""
    from .jobs.checks import check_certify_args

    for sigma0 in cfg.sigma0s:
        for s in settings(cfg):
            if s.derived_from is None:
                check_certify_args(
                    _results_dir(root, cfg, sigma0) / f"{s.key}.tsv", **_run_options(s, cfg)
                )


def _results_dir(root: Path, cfg: DemoConfig, sigma0: float) -> Path:
    return root / cfg.results_dir / f"noise_{sigma0:g}"


def _certify(
    checkpoint: Path,
    outfile: Path,
    sigma0: float,
    s: Setting,
    cfg: DemoConfig,
    device,
    progress: bool = True,
) -> None:
    """:func:`smoothcert.jobs.certify_file` (``smoothcert certify``) with the demo's options
    (:func:`_run_options`)."""
    from .jobs import certify_file

    certify_file(
        DATASET,
        checkpoint,
        outfile,
        noise=s.noise,
        k=float(s.k),
        sigma0=float(sigma0),
        norm=s.norm,
        device=device,
        progress=progress,
        **_run_options(s, cfg),
    )


def _sigma_text(sigma0: float, noise: str, k: float) -> str:
    from .noises import matched_sigma

    sigma = sigma0 if noise == "gaussian" else matched_sigma(sigma0, DIM, k)
    return f"σ={sigma:.3g}"


def run_demo(
    outdir="runs/demo",
    quick: bool = False,
    *,
    config: DemoConfig | None = None,
    device=None,
    progress: bool = True,
    out=None,
) -> DemoResult:
    """Run the demo (see the module notes) into ``outdir``; print to ``out`` (stdout).

    Torch runs with ``config.threads`` CPU threads meanwhile; the caller's setting is restored."""
    import torch

    cfg = config or (QUICK if quick else FULL)
    if isinstance(cfg.threads, bool) or not isinstance(cfg.threads, int) or cfg.threads < 1:
        raise SmoothCertError(f"threads must be a positive integer, got {cfg.threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run_demo(outdir, quick, cfg, device, progress, out or sys.stdout)
    finally:
        torch.set_num_threads(before)


def _run_demo(outdir, quick: bool, cfg: DemoConfig, device, progress: bool, out) -> DemoResult:
    """The demo's steps, in order (``run_demo`` has set the thread count)."""
    start = time.time()
    root = _prepare_outdir(outdir, cfg)
    res = DemoResult(outdir=root)
    say = lambda *a: print(*a, file=out, flush=True)  # noqa: E731

    say(
        f"# smoothcert demo{' (quick)' if quick else ''}: {ARCH} on {DATASET} (d = {DIM}), "
        f"{cfg.threads} CPU thread{'s' if cfg.threads > 1 else ''}, outputs in {root}"
    )
    for sigma0 in cfg.sigma0s:  # 1. models
        res.checkpoints[sigma0] = _train_model(root, sigma0, cfg, device, progress, say)
    n_images = _count_images(cfg)
    for sigma0, ckpt in res.checkpoints.items():  # 2. certification
        _certify_runs(root, sigma0, ckpt, cfg, res, n_images, device, progress, say)
    md = [f"# smoothcert demo: certified accuracy of {ARCH} on {DATASET} (d = {DIM})", ""]
    for norm, radii, name in (("l2", cfg.l2_radii, "l2"), ("linf", cfg.linf_radii, "l∞")):
        md += _report_norm(root, norm, radii, name, cfg, res, n_images, say)  # 3. tables, plots
    res.confidence = _confidence_text(cfg)
    say("")
    say(textwrap.fill(res.confidence, 100))
    md += [res.confidence, ""]
    res.tables_file = root / "tables.md"
    res.tables_file.write_text("\n".join(md))
    res.seconds = time.time() - start
    _print_summary(root, cfg, res, say)
    return res


def _prepare_outdir(outdir, cfg: DemoConfig) -> Path:
    """Create the output folder and check every certification run's options (a bad value ends
    here in one line, before anything is trained)."""
    root = Path(outdir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SmoothCertError(f"cannot create output folder {root}: {exc.strerror}") from None
    _check_runs(root, cfg)
    return root


def _train_model(
    root: Path, sigma0: float, cfg: DemoConfig, device, progress: bool, say: Callable
) -> Path:
    """Train the model of ``sigma0`` (or reuse its checkpoint, configuration-checked); returns
    the checkpoint."""
    from .training import NoiseSpec, train

    mdir = root / "models" / DATASET / ARCH / f"noise_{sigma0:g}"
    say(
        f"## training {ARCH} with Gaussian noise sigma0 = {sigma0:g} "
        f"({cfg.epochs} epochs) -> {mdir}"
    )
    tr = train(
        DATASET,
        ARCH,
        mdir,
        NoiseSpec(sigma=sigma0),
        epochs=cfg.epochs,
        batch=cfg.batch,
        lr=cfg.lr,
        lr_step_size=cfg.lr_step_size,
        gamma=cfg.gamma,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        device=device,
        progress=progress,
        verbose=False,
    )
    if tr.history:
        last = tr.history[-1]
        say(
            f"   trained epochs {tr.start_epoch + 1}-{tr.epoch}: test accuracy under noise "
            f"{last['test_acc']:.1f}%"
        )
    else:
        say(f"   reusing the checkpoint ({tr.epoch} epochs, same configuration)")
    return tr.checkpoint


def _count_images(cfg: DemoConfig) -> int:
    """The number of test images each run certifies."""
    from .data import load_dataset, select_indices

    return len(select_indices(len(load_dataset(DATASET, "test")), cfg.skip, cfg.max))


def _certify_runs(
    root: Path,
    sigma0: float,
    ckpt: Path,
    cfg: DemoConfig,
    res: DemoResult,
    n_images: int,
    device,
    progress: bool,
    say: Callable,
) -> None:
    """Every run of :func:`settings` for the model of ``sigma0``, in order: certified (resumed
    when finished or interrupted), or derived from an earlier run (the Gaussian l-inf run);
    a results file made with another checkpoint is dropped first. Fills ``res.results``."""
    from .jobs import derive_linf_file

    rdir = _results_dir(root, cfg, sigma0)
    rdir.mkdir(parents=True, exist_ok=True)
    for s in settings(cfg):
        outfile = rdir / f"{s.key}.tsv"
        if _drop_stale(outfile, ckpt):
            say(f"   {outfile}: made with an older checkpoint, recomputing")
        if s.derived_from is not None:
            say(
                f"## {s.noise} against {s.norm}: derived from {s.derived_from}.tsv "
                f"(Theorem 3, no new samples) -> {outfile}"
            )
            derive_linf_file(rdir / f"{s.derived_from}.tsv", outfile, dim=DIM, sigma0=sigma0)
        else:
            how = "sequential, " if cfg.adaptive else ""
            say(
                f"## certify sigma0 = {sigma0:g}: {s.noise} k={s.k:g} against {s.norm} "
                f"({n_images} test images, {how}N = {cfg.n}) -> {outfile}"
            )
            t0 = time.time()
            _certify(ckpt, outfile, sigma0, s, cfg, device, progress)
            say(f"   {time.time() - t0:.1f} s")
        res.results[(sigma0, s.key)] = outfile


def _accuracy_rows(norm: str, radii, cfg: DemoConfig, res: DemoResult) -> tuple[list, list]:
    """The certified accuracies at ``radii`` (table rows) and the results (plot curves) of
    every run against ``norm``, each labelled with its noise and sigma."""
    from .analysis import certified_accuracy, read_results

    rows, curves = [], []
    for sigma0 in cfg.sigma0s:
        for s in settings(cfg):
            if s.norm != norm:
                continue
            table = read_results(res.results[(sigma0, s.key)])
            label = f"{s.label} {_sigma_text(sigma0, s.noise, s.k)}"
            if len(cfg.sigma0s) > 1:
                label += f" (σ0={sigma0:g})"
            rows.append((label, certified_accuracy(table, radii)))
            curves.append((label, table))
    return rows, curves


def _terminal_table(rows: list, radii, norm: str) -> tuple[str, bool]:
    """The aligned text table for the terminal, and whether it was narrowed: every other radius
    when all of them would not fit in 100 columns."""
    from .analysis import format_table

    few = list(radii) if len(radii) <= 5 else list(radii)[::2]
    shown = format_table(rows, radii, "text", best="all", norm=norm)
    narrowed = max(map(len, shown.splitlines())) > 100
    if narrowed:
        shown = format_table(
            [
                (label, [a for a, r in zip(acc, radii, strict=True) if r in few])
                for label, acc in rows
            ],
            few,
            "text",
            best="all",
            norm=norm,
        )
    return shown, narrowed


def _report_norm(
    root: Path,
    norm: str,
    radii,
    name: str,
    cfg: DemoConfig,
    res: DemoResult,
    n_images: int,
    say: Callable,
) -> list[str]:
    """The certified accuracies against ``norm``: kept in ``res``, plotted, printed; returns
    the lines of ``tables.md`` for them."""
    from .analysis import format_table, plot_certified_accuracy

    rows, curves = _accuracy_rows(norm, radii, cfg, res)
    text = format_table(rows, radii, "markdown", norm=norm)
    res.tables[norm] = text
    shown, narrowed = _terminal_table(rows, radii, norm)
    res.accuracies[norm] = {label: [float(a) for a in acc] for label, acc in rows}
    res.plots[norm] = plot_certified_accuracy(
        curves,
        root / f"certified_accuracy_{norm}.png",
        max_radius=max(radii) if max(radii) > 0 else None,
        norm_label=f"{name} radius",
        title=f"digits (d = {DIM}), {name} attacks: "
        f"{n_images} test images, N = {cfg.n:,}, "
        f"alpha = {cfg.alpha:g}",
    )
    heading = (
        f"Certified accuracy against {name} attacks ({n_images} test images, "
        f"N0 = {cfg.n0}, {'budget ' if cfg.adaptive else ''}N = {cfg.n}, "
        f"alpha = {cfg.alpha:g})"
    )
    note = "; every other radius, all in tables.md" if narrowed else ""
    say("")
    say(textwrap.fill(heading + " (* = best at that radius" + note + "):", 100))
    say("")
    say(shown.rstrip("\n"))
    return [f"## {heading}", "", text.rstrip("\n"), ""]


def _confidence_text(cfg: DemoConfig) -> str:
    """What the certificates' confidence is (printed and in ``tables.md``)."""
    mc = cfg.cert_failure_prob
    return (
        f"Confidence: each certified radius holds with probability >= {1 - cfg.alpha:g} "
        f"(alpha = {cfg.alpha:g}, one-sided Clopper-Pearson bound of p_A; the Gaussian and l2 "
        f"family certificates are exact), and >= {1 - cfg.alpha - mc:g} for linf-mixed "
        f"(alpha + {mc:g}, the failure probability of its Monte Carlo certificate table of "
        f"{cfg.cert_samples:,} samples shared by all inputs)."
    )


def _print_summary(root: Path, cfg: DemoConfig, res: DemoResult, say: Callable) -> None:
    """Where the files are, and the time taken."""
    say("")
    say("Files:")
    say(f"  models (checkpoint.pth.tar + log): {root / 'models' / DATASET / ARCH}")
    say(f"  certify results (.tsv + .config.json): {root / cfg.results_dir}")
    say(f"  tables: {res.tables_file}")
    for plot in res.plots.values():
        say(f"  plot: {plot}")
    say(f"Done in {res.seconds:.0f} s.")


__all__ = ["DemoConfig", "DemoResult", "FULL", "QUICK", "run_demo", "settings"]
