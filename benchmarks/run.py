"""Performance benchmarks of smoothcert: every non-Gaussian noise against the Gaussian.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--threads N] [--out docs/performance.md]

Four measurements, each reported as an absolute time and as a ratio to the Gaussian measured in
the same run (medians over repeats, noises interleaved inside each repeat so that a change of
machine load hits every noise alike):

1. per-input certification time (Cohen et al.'s ``certify`` loop: N0 selection samples, N
   estimation samples, Clopper-Pearson bound, certificate lookup), split into sampling, forward
   passes, counting and certificate lookup;
2. sampler throughput at d = 64, 3072 and 150528;
3. time to build a certificate (cold, from the disk cache, from memory) and per-lookup time;
4. peak memory (VmHWM) of a certification at two values of N, in fresh subprocesses.

The tables are printed and written to ``docs/performance.md`` (generated: do not edit it by
hand). ``--quick`` uses smaller sizes (stated in the output) and finishes in about a minute.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import json
import math
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy
import torch
from scipy import stats
from torch import nn

import smoothcert
from smoothcert.certificates import DEFAULT_SAMPLES, get_certificate
from smoothcert.certificates import cache as cert_cache
from smoothcert.noises import make_noise

ROOT = Path(__file__).resolve().parents[1]
NOISES = ("gaussian", "l2-family", "linf-mixed", "linf-pure")
#: shape parameter as a fraction of d: the README's CIFAR-10 setting k = 500 at d = 3072
K_RATIO = 500 / 3072
SIGMA0 = 0.5
CIFAR_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
ALPHA = 0.001


def noise_k(name: str, dim: int) -> float:
    return 0.0 if name == "gaussian" else float(round(K_RATIO * dim))


def norm_for(name: str) -> str:
    return "linf" if name.startswith("linf") else "l2"


def build_noise(name: str, dim: int):
    return make_noise(name, dim, k=noise_k(name, dim), sigma0=SIGMA0)


def is_monte_carlo(name: str) -> bool:
    return name.startswith("linf")


# ------------------------------------------------------------------------------ configuration
@dataclass
class Config:
    profile: str
    device: str
    # 1. certification
    cert_repeats: int
    certify_inputs: int
    n0: int
    n: int
    batch: int
    # 2. samplers: (d, batch)
    sampler_sizes: tuple
    sampler_repeats: int
    # 3. certificates
    cert_dims: tuple
    #: samples of the Monte Carlo tables by (noise, d) or by d (absent: the library default)
    mc_samples: dict
    cold_repeats: int
    cached_repeats: int
    lookups: int
    exact_lookups: int
    # 4. memory
    memory_dim: int
    memory_ns: tuple
    memory_batch: int
    memory_noises: tuple = NOISES
    #: input dimension of section 1 (3072: CIFAR-10 shape and ResNet-20; else a linear model)
    certify_dim: int = 3072
    #: time ``smoothcert.smooth.Smooth`` when importable (else the loop written out here)
    use_smooth: bool = True
    #: forward passes per input, fixed N against certify_adaptive: budget N (= n_max), seeds
    #: per p_A (section "passes")
    passes_n: int = 100_000
    passes_seeds: int = 3
    threads: int | None = None
    notes: list = field(default_factory=list)


def make_config(profile: str, device: str = "cpu") -> Config:
    """``full`` (the published run), ``quick`` (< 60 s) or ``tiny`` (the smoke test)."""
    if profile == "full":
        return Config(
            profile,
            device,
            cert_repeats=4,
            certify_inputs=1,
            n0=100,
            n=2000,
            batch=500,
            sampler_sizes=((64, 1000), (3072, 1000), (150528, 50)),
            sampler_repeats=11,
            cert_dims=(3072, 150528),
            mc_samples={("linf-pure", 3072): 100_000, 150528: 2_000},
            cold_repeats=2,
            cached_repeats=7,
            lookups=2000,
            exact_lookups=10,
            memory_dim=3072,
            memory_ns=(10_000, 100_000),
            memory_batch=1000,
        )
    if profile == "quick":
        return Config(
            profile,
            device,
            cert_repeats=3,
            certify_inputs=1,
            n0=100,
            n=400,
            batch=200,
            sampler_sizes=((64, 1000), (3072, 1000), (150528, 50)),
            sampler_repeats=5,
            cert_dims=(3072, 150528),
            mc_samples={3072: 5_000, 150528: 200},
            cold_repeats=1,
            cached_repeats=3,
            lookups=500,
            exact_lookups=3,
            memory_dim=3072,
            memory_ns=(10_000, 100_000),
            memory_batch=1000,
            memory_noises=("gaussian",),
            passes_n=10_000,
            passes_seeds=2,
        )
    if profile == "tiny":
        return Config(
            profile,
            device,
            cert_repeats=1,
            certify_inputs=1,
            n0=20,
            n=60,
            batch=30,
            sampler_sizes=((64, 100), (3072, 20)),
            sampler_repeats=1,
            cert_dims=(64,),
            mc_samples={64: 500},
            cold_repeats=1,
            cached_repeats=1,
            lookups=20,
            exact_lookups=1,
            memory_dim=64,
            memory_ns=(200, 2_000),
            memory_batch=100,
            memory_noises=("gaussian",),
            certify_dim=64,
            passes_n=1_000,
            passes_seeds=1,
        )
    raise ValueError(f"unknown profile {profile!r}")


def on_cpu(cfg: Config) -> bool:
    return not cfg.device.startswith("cuda")


def mc_kwargs(cfg: Config, name: str, dim: int) -> dict:
    """Certificate arguments used everywhere in a run (so that tables are shared)."""
    if not is_monte_carlo(name):
        return {}
    samples = cfg.mc_samples.get((name, dim), cfg.mc_samples.get(dim))
    return {} if samples is None else {"samples": samples}


# ------------------------------------------------------------------------------ utilities
def synchronizer(device: str):
    if str(device).startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


class PhaseTimer:
    """Accumulates wall time per phase (synchronising the GPU at both ends of a phase)."""

    def __init__(self, device: str):
        self.sync = synchronizer(device)
        self.totals: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def phase(self, name: str):
        self.sync()
        t = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.totals[name] += time.perf_counter() - t


def median(xs) -> float:
    return float(statistics.median(xs))


def fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_ratio(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}×"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "FAIL")


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


@dataclass
class Table:
    key: str
    title: str
    columns: list
    rows: list
    notes: list = field(default_factory=list)
    seconds: float = math.nan
    #: how many leading columns name a row (for the summary)
    label_cols: int = 2

    def markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]


# ------------------------------------------------------------------------------ models
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _resnet20() -> nn.Module:
    """CIFAR ResNet-20 (He et al., 2016): 3 stages of 3 basic blocks, 16/32/64 channels."""
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for j in range(3):
            layers.append(_BasicBlock(cin, cout, stride if j == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, NUM_CLASSES)]
    return nn.Sequential(*layers)


def cifar_model(device: str) -> tuple[nn.Module, str]:
    """``smoothcert.models.get_architecture("cifar_resnet20", "cifar10")`` when the library has
    it, else the same architecture defined here. Random weights (speed does not depend on them)."""
    torch.manual_seed(0)
    try:
        from smoothcert.models import get_architecture

        model, desc = (
            get_architecture("cifar_resnet20", "cifar10"),
            ('smoothcert.models.get_architecture("cifar_resnet20", "cifar10")'),
        )
    except Exception:  # not built yet, or no such architecture
        model, desc = _resnet20(), "CIFAR ResNet-20 defined in benchmarks/run.py"
    return model.to(device).eval(), desc


def linear_model(dim: int, device: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(dim, NUM_CLASSES)).to(device).eval()


def input_shape(dim: int) -> tuple:
    return CIFAR_SHAPE if dim == 3072 else (dim,)


# ------------------------------------------------------------------------------ 1. certification
def _smooth_class():
    """``smoothcert.smooth.Smooth`` when the library has it (else the direct loop is timed)."""
    try:
        from smoothcert.smooth import Smooth
    except ImportError:
        return None
    return Smooth


class _TimedModel(nn.Module):
    """The base classifier, with its calls timed as the ``forward`` phase."""

    def __init__(self, inner: nn.Module, timer: PhaseTimer):
        super().__init__()
        self.inner = inner
        self.timer = timer

    def forward(self, x):
        with self.timer.phase("forward"):
            return self.inner(x)


def _time_attribute(obj, name: str, timer: PhaseTimer, phase: str) -> None:
    """Shadow the bound method ``obj.name`` by a timed wrapper (an instance attribute: the
    library code is unchanged; ``del obj.name`` restores it)."""
    orig = getattr(obj, name)

    def timed(*args, **kwargs):
        with timer.phase(phase):
            return orig(*args, **kwargs)

    setattr(obj, name, timed)


class SmoothCertifier:
    """One ``Smooth`` per noise (certificate built once, as in a real run), instrumented:
    ``noise.sample`` -> sampling, the model -> forward, ``Smooth.radius`` -> certificate
    lookup; counting and everything else (noise blocks, x + z, Clopper-Pearson) is the rest of
    the wall time."""

    how = (
        "`smoothcert.smooth.Smooth.certify` (one `Smooth` per noise), instrumented by "
        "shadowing `noise.sample`, the model and `Smooth.radius` (the certificate lookup) "
        "with timed wrappers; 'counting & other' = wall time minus those (bincount, "
        "generators and `torch.cat` of the noise blocks, x + z, Clopper-Pearson bound); the "
        "radius memo of `Smooth` is cleared before each input, as distinct inputs have "
        "distinct p_A bounds"
    )

    def __init__(self, Smooth, model, noise, norm, device, cert_kw):
        self.timer = PhaseTimer(device)
        self.noise = noise
        self.smooth = Smooth(
            _TimedModel(model, self.timer), NUM_CLASSES, noise, device, norm=norm, **cert_kw
        )
        self.smooth.certificate  # noqa: B018  (build or load the table outside the timings)
        _time_attribute(noise, "sample", self.timer, "sampling")
        _time_attribute(self.smooth, "radius", self.timer, "certificate")

    def certify(self, x, n0, n, batch, seed) -> dict:
        memo = getattr(self.smooth, "_radius_memo", None)
        if memo is not None:
            memo.clear()
        self.timer.totals.clear()
        self.timer.sync()
        t, c = time.perf_counter(), time.process_time()
        self.smooth.certify(x, n0, n, ALPHA, batch, generator=seed)
        self.timer.sync()
        wall = time.perf_counter() - t
        parts = dict(self.timer.totals)
        parts["counting"] = wall - sum(parts.values())
        parts["total"] = wall
        parts["cpu"] = time.process_time() - c
        return parts

    def close(self):
        del self.noise.sample


def _cp_lower(n_a: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound of p_A at level alpha (Cohen et al.)."""
    return float(stats.beta.ppf(alpha, n_a, n - n_a + 1)) if n_a > 0 else 0.0


class DirectCertifier:
    """Cohen et al.'s certify loop written out here, timed per phase (used while
    ``smoothcert.smooth`` does not exist, and by the smoke test)."""

    how = (
        "Cohen et al.'s certify loop re-implemented in benchmarks/run.py with the library's "
        "`noise.sample` and `get_certificate` (`smoothcert.smooth` was not used); sampling "
        "includes adding the noise to the input; counting & other = bincount + "
        "Clopper-Pearson bound"
    )

    def __init__(self, model, noise, norm, device, cert_kw):
        self.model, self.noise, self.norm, self.device = model, noise, norm, device
        self.timer = PhaseTimer(device)
        dev = {"device": device} if is_monte_carlo(noise.name) else {}
        self.cert = get_certificate(noise, norm, **cert_kw, **dev)

    def _counts(self, x, num, batch, gen) -> torch.Tensor:
        counts = torch.zeros(NUM_CLASSES, dtype=torch.long)
        flat = x.reshape(1, -1)
        for start in range(0, num, batch):
            b = min(batch, num - start)
            with self.timer.phase("sampling"):
                z = self.noise.sample(b, generator=gen, device=self.device)
                noisy = (flat + z).reshape(b, *x.shape)
            with self.timer.phase("forward"):
                logits = self.model(noisy)
            with self.timer.phase("counting"):
                counts += torch.bincount(logits.argmax(1), minlength=NUM_CLASSES).cpu()
        return counts

    def certify(self, x, n0, n, batch, seed) -> dict:
        self.timer.totals.clear()
        gen = torch.Generator(device=self.device).manual_seed(seed)
        t, c = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            c_hat = int(self._counts(x, n0, batch, gen).argmax())
            n_a = int(self._counts(x, n, batch, gen)[c_hat])
        with self.timer.phase("counting"):
            p_a = _cp_lower(n_a, n, ALPHA)
        if p_a >= 0.5:
            with self.timer.phase("certificate"):
                self.cert.radius(p_a)
        self.timer.sync()
        return {
            **self.timer.totals,
            "total": time.perf_counter() - t,
            "cpu": time.process_time() - c,
        }

    def close(self):
        pass


def make_certifier(cfg: Config, model, name: str, dim: int):
    noise = build_noise(name, dim)
    kw = mc_kwargs(cfg, name, dim)
    Smooth = _smooth_class() if cfg.use_smooth else None
    if Smooth is not None:
        return SmoothCertifier(Smooth, model, noise, norm_for(name), cfg.device, kw)
    return DirectCertifier(model, noise, norm_for(name), cfg.device, kw)


def bench_certify(cfg: Config, log=print) -> Table:
    dim = cfg.certify_dim
    if dim == 3072:
        model, model_desc = cifar_model(cfg.device)
    else:  # the smoke test's tiny profile
        model, model_desc = linear_model(dim, cfg.device), "a linear classifier"
    torch.manual_seed(1)
    inputs = [torch.rand(input_shape(dim), device=cfg.device) for _ in range(cfg.certify_inputs)]
    certifiers = {name: make_certifier(cfg, model, name, dim) for name in NOISES}
    phases = ("sampling", "forward", "certificate", "counting")
    try:
        for c in certifiers.values():  # warm-up: sampler set-up, allocator, kernels
            c.certify(inputs[0], cfg.n0, cfg.n, cfg.batch, seed=12345)
        per = {name: defaultdict(list) for name in NOISES}  # name -> phase -> per repeat
        for rep in range(cfg.cert_repeats):
            for name, c in certifiers.items():  # interleaved: load changes hit all alike
                acc: dict[str, float] = defaultdict(float)
                for i, x in enumerate(inputs):
                    for key, v in c.certify(
                        x, cfg.n0, cfg.n, cfg.batch, seed=rep * 1000 + i
                    ).items():
                        acc[key] += v / len(inputs)
                for key in (*phases, "total", "cpu"):
                    per[name][key].append(acc.get(key, 0.0))
    finally:
        how = next(iter(certifiers.values())).how
        for c in certifiers.values():
            c.close()
    rows = []
    g = per["gaussian"]

    def paired(name, key):
        return median([a / b for a, b in zip(per[name][key], g[key], strict=True)])

    def equalised(name):
        # the forward passes do the same work for every noise (same model, same batch
        # shapes): replace the noise's forward time by the Gaussian's of the same repeat
        return median(
            [
                (gt + (t - f) - (gt - gf)) / gt
                for t, f, gt, gf in zip(
                    per[name]["total"], per[name]["forward"], g["total"], g["forward"], strict=True
                )
            ]
        )

    for name in NOISES:
        eq = equalised(name)
        ok = None if name == "gaussian" else eq <= 1.05
        rows.append(
            [name, f"{noise_k(name, dim):g}", norm_for(name)]
            + [fmt_time(median(per[name][p])) for p in phases]
            + [
                fmt_time(median(per[name]["total"])),
                fmt_time(median(per[name]["cpu"])),
                fmt_ratio(paired(name, "sampling")),
                fmt_ratio(paired(name, "total")),
                fmt_ratio(paired(name, "cpu")),
                fmt_ratio(eq),
                verdict(ok),
            ]
        )
    notes = [
        f"model: {model_desc} (random weights), d = {dim}, device {cfg.device}",
        f"N0 = {cfg.n0}, N = {cfg.n}, batch {cfg.batch}, alpha = {ALPHA}; "
        f"{cfg.certify_inputs} input(s) per repeat, median of {cfg.cert_repeats} repeats "
        "after one warm-up certification per noise (certificate tables already built)",
        f"timed code: {how}",
        "vs Gaussian = median over repeats of (noise time / Gaussian time in the same "
        "repeat); CPU = CPU time of the process (all threads)",
        "forward-equalised = median over repeats of (Gaussian wall time + noise's "
        "non-forward time − Gaussian's non-forward time) / Gaussian wall time: the forward "
        "passes do identical work for every noise, and their run-to-run variation on a "
        "loaded machine (±10%) would otherwise hide a 5% difference",
        "target: every noise ≤ 1.05× the Gaussian per input, judged on the forward-equalised ratio",
    ]
    return Table(
        "certify",
        "1. Per-input certification time",
        [
            "noise",
            "k",
            "norm",
            "sampling",
            "forward",
            "certificate lookup",
            "counting & other",
            "wall / input",
            "CPU / input",
            "sampling vs Gaussian",
            "wall vs Gaussian",
            "CPU vs Gaussian",
            "forward-equalised vs Gaussian",
            "≤ 1.05×",
        ],
        rows,
        notes,
        label_cols=1,
    )


# ------------------------------------------------------------------------------ passes
#: top-class probabilities of the forward-pass section
PASSES_PA = (0.45, 0.7, 0.9, 0.99, 0.999, 0.9999, 1.0)


class _ThresholdModel(nn.Module):
    """Class 0 iff the first noise coordinate is <= sigma Phi^-1(p_A) (x = 0): P(class 0) = p_A
    exactly under Gaussian noise; counts its forward passes."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma, self.cut, self.calls = sigma, 0.0, 0

    def set_p(self, p: float) -> None:
        self.cut = self.sigma * float(stats.norm.ppf(p)) if p < 1 else math.inf

    def forward(self, x):
        self.calls += x.shape[0]
        z0 = x.reshape(x.shape[0], -1)[:, 0]
        return torch.stack([(z0 <= self.cut).float(), (z0 > self.cut).float()], dim=1)


def bench_passes(cfg: Config, log=print) -> Table:
    """Forward passes (counted by the model) and wall time per input of ``Smooth.certify``
    (fixed N) and ``Smooth.certify_adaptive`` (n_max = N, radius grid), Gaussian l2, for a
    range of p_A."""
    Smooth = _smooth_class()
    if Smooth is None or not hasattr(Smooth, "certify_adaptive"):
        return Table(
            "passes",
            "Forward passes per input: fixed N and adaptive",
            ["p_A", "verdict"],
            [["smoothcert.Smooth.certify_adaptive missing", "—"]],
        )
    from smoothcert.smooth import derive_seed

    dim, n, n0 = 2, cfg.passes_n, cfg.n0
    model = _ThresholdModel(SIGMA0)
    smooth = Smooth(model, 2, make_noise("gaussian", dim, sigma=SIGMA0), device=cfg.device)
    cap = SIGMA0 * float(stats.norm.ppf(ALPHA ** (1.0 / n)))
    radii = [0.25 * (i + 1) for i in range(int(cap / 0.25))]
    x = torch.zeros(dim, dtype=torch.float64, device=cfg.device)
    rows, tot = [], {"fixed": [0, 0.0], "adaptive": [0, 0.0]}
    for p in PASSES_PA:
        model.set_p(p)
        res = {"fixed": [0, 0.0, []], "adaptive": [0, 0.0, []]}
        for seed in range(cfg.passes_seeds):
            gen = derive_seed(7, seed)
            for mode in ("fixed", "adaptive"):
                model.calls = 0
                t0 = time.perf_counter()
                if mode == "fixed":
                    _, r, _ = smooth.certify(x, n0, n, ALPHA, n, generator=gen)
                    r = max([g for g in radii if g <= r], default=0.0)
                else:
                    r = smooth.certify_adaptive(
                        x, n0, n, ALPHA, n, radii=radii, generator=gen
                    ).radius
                res[mode][1] += time.perf_counter() - t0
                res[mode][0] += model.calls
                res[mode][2].append(r)
        k = cfg.passes_seeds
        for mode in tot:
            tot[mode][0] += res[mode][0]
            tot[mode][1] += res[mode][1]
        rows.append(
            [
                f"{p:g}",
                f"{res['fixed'][0] / k:,.0f}",
                f"{res['adaptive'][0] / k:,.0f}",
                fmt_ratio(res["fixed"][0] / res["adaptive"][0]),
                fmt_time(res["fixed"][1] / k),
                fmt_time(res["adaptive"][1] / k),
                f"{statistics.mean(res['fixed'][2]):g}",
                f"{statistics.mean(res['adaptive'][2]):g}",
                "—",
            ]
        )
        log(f"passes p_A = {p:g}: {rows[-1][1]} vs {rows[-1][2]}")
    m = len(PASSES_PA) * cfg.passes_seeds
    rows.append(
        [
            "all (mean)",
            f"{tot['fixed'][0] / m:,.0f}",
            f"{tot['adaptive'][0] / m:,.0f}",
            fmt_ratio(tot["fixed"][0] / tot["adaptive"][0]),
            fmt_time(tot["fixed"][1] / m),
            fmt_time(tot["adaptive"][1] / m),
            "",
            "",
            "—",
        ]
    )
    notes = [
        f"Gaussian sigma = {SIGMA0}, l2, a threshold classifier on one noise coordinate "
        f"(d = {dim}, P(top class) = p_A exactly); N0 = {n0}, N = n_max = {n:,}, alpha = "
        f"{ALPHA}, grid {', '.join(f'{g:g}' for g in radii)} (up to fixed N's cap "
        f"{cap:.3f}); {cfg.passes_seeds} seed(s) per p_A, the same for both modes",
        "passes counted by the model, N0 included; fixed N's radius rounded down to the "
        "grid; no target here: the saving on a real workload (p_A of Cohen et al.'s "
        "published runs) is in docs/sequential.md (python scripts/sequential_report.py)",
    ]
    return Table(
        "passes",
        "Forward passes per input: fixed N and adaptive",
        [
            "p_A",
            "passes fixed N",
            "passes adaptive",
            "fewer",
            "time fixed N",
            "time adaptive",
            "grid radius fixed N",
            "grid radius adaptive",
            "target",
        ],
        rows,
        notes,
        label_cols=1,
    )


# ------------------------------------------------------------------------------ 2. samplers
def _minor_faults() -> int:
    try:
        import resource
    except ImportError:  # not on this platform
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def bench_samplers(cfg: Config, log=print) -> Table:
    device = cfg.device
    sync = synchronizer(device)
    rows = []
    for dim, batch in cfg.sampler_sizes:
        noises = {name: build_noise(name, dim) for name in NOISES}
        gen = torch.Generator(device=device).manual_seed(0)
        for noise in noises.values():  # warm-up (builds the linf-mixed envelope once)
            noise.sample(batch, generator=gen, device=device)
        times, cpus, faults = defaultdict(list), defaultdict(list), defaultdict(list)
        for _ in range(cfg.sampler_repeats):
            for name, noise in noises.items():  # interleaved
                # one untimed call first: a certification samples the same noise batch after
                # batch, and the allocator state another sampler leaves behind (its freed
                # temporaries) would otherwise be charged to whichever sampler runs next
                noise.sample(batch, generator=gen, device=device)
                sync()
                f0 = _minor_faults()
                t, c = time.perf_counter(), time.process_time()
                noise.sample(batch, generator=gen, device=device)
                sync()
                times[name].append(time.perf_counter() - t)
                cpus[name].append(time.process_time() - c)
                faults[name].append(_minor_faults() - f0)

        def paired(name, series):
            return median(
                [
                    g / t if t > 0 else math.nan
                    for g, t in zip(series["gaussian"], series[name], strict=True)
                ]
            )

        for name in NOISES:
            rate = batch / median(times[name])
            ratio, cpu_ratio = paired(name, times), paired(name, cpus)
            target = {"l2-family": 0.9, "linf-mixed": 0.3}.get(name)
            judged = cpu_ratio if on_cpu(cfg) else ratio
            ok = None if target is None else judged >= target
            rows.append(
                [
                    f"{dim:,}",
                    name,
                    f"{noise_k(name, dim):g}",
                    f"{batch:,}",
                    fmt_time(median(times[name])),
                    fmt_rate(rate),
                    f"{median(faults[name]):,.0f}",
                    fmt_ratio(ratio),
                    fmt_ratio(cpu_ratio),
                    f"≥ {target}×" if target else "—",
                    verdict(ok),
                ]
            )
        log(f"  samplers d={dim} done")
    notes = [
        f"`noise.sample(batch, generator, device={device!r})`, float32, median of "
        f"{cfg.sampler_repeats} repeats after a warm-up call, noises interleaved, each "
        "timed call preceded by an untimed call of the same sampler (the steady state of "
        "a certification, which samples one noise batch after batch)",
        "vs Gaussian = median over repeats of (Gaussian time / noise time in the same "
        "repeat), i.e. the throughput ratio, in wall time and in CPU time of the process; "
        "the verdict uses the "
        + ("CPU-time ratio (robust to the other jobs)" if on_cpu(cfg) else "wall-time ratio"),
        "page faults: median minor page faults of the process per call, i.e. 4 KiB pages "
        "of freshly mapped memory touched for the first time: large temporaries the "
        "allocator did not reuse (this depends on the allocator's state, so it varies "
        "between runs); faults are slow on this virtual machine, so samplers that allocate "
        "(n, d) temporaries lose most when it is loaded",
        "targets: l2 family ≥ 0.9×, mixed l∞ ≥ 0.3× the Gaussian (no target for linf-pure)",
    ]
    return Table(
        "samplers",
        "2. Sampler throughput",
        [
            "d",
            "noise",
            "k",
            "batch",
            "time / batch",
            "samples/s",
            "page faults / call",
            "vs Gaussian (wall)",
            "vs Gaussian (CPU)",
            "target",
            "PASS/FAIL",
        ],
        rows,
        notes,
    )


# ------------------------------------------------------------------------------ 3. certificates
#: the Monte Carlo table builder draws a pilot of min(PILOT, samples) before its samples
PILOT = 20_000


def _clear_memory_caches():
    cert_cache._MEMORY.clear()
    try:
        from smoothcert.certificates import exact_l2

        exact_l2._GL_CACHE.clear()
    except (ImportError, AttributeError):
        pass


def _timed(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return median(ts)


@contextlib.contextmanager
def _cache_env(path: Path):
    old = os.environ.get("SMOOTHCERT_CACHE")
    os.environ["SMOOTHCERT_CACHE"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SMOOTHCERT_CACHE", None)
        else:
            os.environ["SMOOTHCERT_CACHE"] = old


def _measure_certificate(
    cfg: Config, name: str, dim: int, workdir: Path, shared: Path, ps: np.ndarray
) -> dict:
    noise, norm = build_noise(name, dim), norm_for(name)
    kw = mc_kwargs(cfg, name, dim)
    if is_monte_carlo(name):
        kw["device"] = cfg.device

    def get():
        return get_certificate(noise, norm, **kw)

    cold_dirs = []

    def cold():
        cold_dirs.append(Path(tempfile.mkdtemp(prefix="cold-", dir=workdir)))
        with _cache_env(cold_dirs[-1]):
            _clear_memory_caches()
            return get()

    reps = 1 if is_monte_carlo(name) else cfg.cold_repeats
    cpu0 = time.process_time()
    t_cold = _timed(cold, reps)
    cpu_cold = (time.process_time() - cpu0) / reps
    for f in cold_dirs[-1].glob("*.npz"):  # the table file, for the disk reads below
        shutil.copy(f, shared)
    with _cache_env(shared):
        cert = get()

        def disk():
            cert_cache._MEMORY.clear()
            return get()

        t_disk = _timed(disk, cfg.cached_repeats)
        t_mem = _timed(get, cfg.cached_repeats)

    def lookups():
        for p in ps:
            cert.radius(float(p))

    t_look = _timed(lookups, cfg.cached_repeats) / ps.size
    t_exact = math.nan
    if "exact" in inspect.signature(cert.radius).parameters and cert.method == "quadrature":
        few = ps[: cfg.exact_lookups]

        def exact():
            for p in few:
                cert.radius(float(p), exact=True)

        t_exact = _timed(exact, 1) / few.size
    samples = kw.get("samples", DEFAULT_SAMPLES) if is_monte_carlo(name) else None
    return dict(
        cold=t_cold,
        cold_cpu=cpu_cold,
        disk=t_disk,
        mem=t_mem,
        look=t_look,
        exact=t_exact,
        method=cert.method,
        samples=samples,
    )


def bench_certificates(cfg: Config, workdir: Path, shared: Path, log=print) -> Table:
    ps = np.random.default_rng(0).uniform(0.55, 0.9999, cfg.lookups)
    results = {}
    for dim in cfg.cert_dims:
        for name in NOISES:
            results[(name, dim)] = r = _measure_certificate(cfg, name, dim, workdir, shared, ps)
            log(f"  certificate {name} d={dim}: cold {fmt_time(r['cold'])}")
    rows = []
    for (name, dim), r in results.items():
        g = results[("gaussian", dim)]
        cold = min(r["cold"], r["cold_cpu"]) if on_cpu(cfg) else r["cold"]
        checks = [r["mem"] <= 1e-3, r["look"] <= 1e-3]
        if name == "l2-family":
            checks.append(cold <= 2.0)
        if name == "linf-mixed" and dim == 3072:
            checks.append(cold <= 60.0 if r["samples"] == DEFAULT_SAMPLES else None)
        ok = None
        if name != "gaussian" and None not in checks:
            ok = all(checks)
        est = "—"
        if r["samples"] is not None and r["samples"] != DEFAULT_SAMPLES:
            drawn = r["samples"] + min(PILOT, r["samples"])
            est = f"≈ {fmt_time(r['cold'] * (DEFAULT_SAMPLES + PILOT) / drawn)}"
        rows.append(
            [
                f"{dim:,}",
                name,
                f"{noise_k(name, dim):g}",
                norm_for(name),
                r["method"],
                f"{r['samples']:,}" if r["samples"] else "—",
                fmt_time(r["cold"]),
                fmt_time(r["cold_cpu"]),
                est,
                fmt_time(r["disk"]),
                fmt_time(r["mem"]),
                fmt_ratio(r["mem"] / g["mem"]),
                fmt_time(r["look"]),
                fmt_ratio(r["look"] / g["look"]),
                fmt_time(r["exact"]),
                verdict(ok),
            ]
        )
    notes = [
        "cold: fresh `$SMOOTHCERT_CACHE` directory, in-memory memo (`cache._MEMORY`) and "
        f"Gauss-Legendre node cache cleared; median of {cfg.cold_repeats} build(s) for the "
        "quadrature and the closed form, one build for a Monte Carlo table; 'cold CPU time' "
        "is the CPU time of this process over the same builds (per build, all threads)",
        "targets: l2-family new configuration (cold) ≤ 2 s; cached (memory) `get_certificate` "
        "and `radius(p)` ≤ 1 ms; linf-mixed at d = 3072 with the default samples ≤ 60 s "
        "('—' when a run used fewer samples). "
        + (
            "Cold builds are judged on min(wall, CPU time): the wall time includes waiting for "
            "the other jobs on the machine, the CPU time adds up all threads; the smaller is an "
            "upper estimate of the wall time on an idle machine"
            if on_cpu(cfg)
            else "Cold builds are judged on wall time"
        ),
        "from disk: `get_certificate` with the memo cleared (table read from its .npz); from "
        "memory: memo hit (what every later call costs); both medians of "
        f"{cfg.cached_repeats} calls",
        f"radius(p): one scalar `cert.radius(p)` call, mean over {cfg.lookups} p values in "
        f"(0.55, 0.9999), median of {cfg.cached_repeats} repeats; radius(p, exact=True): the "
        f"quadrature refinement that `Smooth` uses for the l2 family, mean over "
        f"{cfg.exact_lookups} p values",
        f"Monte Carlo tables (linf-*): `samples` as listed (library default "
        f"{DEFAULT_SAMPLES:,}), failure_prob and n_radii at their defaults, device "
        f"{cfg.device}; 'at default samples' scales the cold time by the number of draws "
        f"(samples + a pilot of min({PILOT:,}, samples)), an estimate",
        "the Gaussian has no table (closed form); the ratios compare the memo-hit "
        "`get_certificate` and the `radius(p)` call with the Gaussian's",
    ]
    return Table(
        "certificates",
        "3. Certificate build and lookup",
        [
            "d",
            "noise",
            "k",
            "norm",
            "method",
            "samples",
            "cold build",
            "cold CPU time",
            "at default samples",
            "from disk",
            "from memory",
            "memory vs Gaussian",
            "radius(p)",
            "radius(p) vs Gaussian",
            "radius(p, exact=True)",
            "PASS/FAIL",
        ],
        rows,
        notes,
    )


# ------------------------------------------------------------------------------ 4. memory
def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        kb = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    return kb / 1024


def _reset_hwm() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0: ``5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_child(spec: dict) -> list[dict]:
    """Run in a fresh process: one certification per N of ``spec["ns"]`` (in order), reporting
    VmHWM before and after each. From the second N on, VmHWM is first reset to the current
    resident set; where that is impossible only the first N is run."""
    cfg = make_config(spec["profile"], spec["device"])
    cfg.use_smooth = spec["use_smooth"]
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    dim = spec["dim"]
    model = linear_model(dim, cfg.device)
    certifier = make_certifier(cfg, model, spec["noise"], dim)  # table read from disk
    torch.manual_seed(1)
    x = torch.rand(input_shape(dim), device=cfg.device)
    out = []
    for i, n in enumerate(spec["ns"]):
        if i and not _reset_hwm():
            break
        if cfg.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        base = _vm_hwm_mb()
        parts = certifier.certify(x, spec["n0"], n, spec["batch"], seed=i)
        r = {
            "n": n,
            "base_mb": base,
            "peak_mb": _vm_hwm_mb(),
            "seconds": parts["total"],
            "fresh": i == 0,
        }
        if cfg.device.startswith("cuda"):
            r["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out.append(r)
    return out


def bench_memory(cfg: Config, shared: Path, log=print) -> Table:
    dim, batch = cfg.memory_dim, cfg.memory_batch
    with _cache_env(shared):  # tables on disk first: the children only read them
        for name in cfg.memory_noises:
            dev = {"device": cfg.device} if is_monte_carlo(name) else {}
            get_certificate(
                build_noise(name, dim), norm_for(name), **mc_kwargs(cfg, name, dim), **dev
            )
    res = {}
    for name in cfg.memory_noises:
        todo = sorted(cfg.memory_ns)
        while todo:  # one child for all N where VmHWM can be reset, else one child per N
            spec = {
                "profile": cfg.profile,
                "device": cfg.device,
                "use_smooth": cfg.use_smooth,
                "threads": cfg.threads,
                "noise": name,
                "dim": dim,
                "ns": todo,
                "n0": 100,
                "batch": batch,
            }
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--memory-child", json.dumps(spec)],
                env={**os.environ, "SMOOTHCERT_CACHE": str(shared)},
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"memory child failed:\n{proc.stderr}")
            for r in json.loads(proc.stdout.strip().splitlines()[-1]):
                res[(name, r["n"])] = r
                todo.remove(r["n"])
                log(f"  memory {name} N={r['n']:,}: peak {r['peak_mb']:.0f} MB")
    reset_used = not all(r["fresh"] for r in res.values())
    mb = 4 * dim / 2**20  # one float32 sample
    gpu = cfg.device.startswith("cuda")
    n_small, n_big = min(cfg.memory_ns), max(cfg.memory_ns)
    rows = []
    for name in cfg.memory_noises:
        for n in cfg.memory_ns:
            r, g = res[(name, n)], res[("gaussian", n)]
            inc, g_inc = r["peak_mb"] - r["base_mb"], g["peak_mb"] - g["base_mb"]
            ok = None
            if n == n_big and n_big > n_small:
                growth = r["peak_mb"] - res[(name, n_small)]["peak_mb"]
                ok = growth <= 0.25 * (n_big - n_small) * mb
            row = [
                name,
                f"{n:,}",
                f"{batch:,}",
                f"{r['base_mb']:.0f} MB",
                f"{r['peak_mb']:.0f} MB",
                f"{inc:.0f} MB",
                fmt_ratio(inc / g_inc) if g_inc > 0 else "n/a",
                fmt_time(r["seconds"]),
            ]
            if gpu:
                row.append(f"{r['gpu_peak_mb']:.0f} MB")
            rows.append(row + [verdict(ok)])
    notes = [
        f"a linear classifier on the flattened input (d = {dim}), N0 = 100, batch {batch:,}, "
        "the certificate table loaded before the first baseline; timed code as in section 1 "
        f"({'Smooth' if cfg.use_smooth and _smooth_class() else 'direct'}); "
        + (
            "one fresh subprocess per noise, running the N in increasing order as a "
            "certification run does input after input, with VmHWM reset "
            "(`5 > /proc/self/clear_refs`) before each later N"
            if reset_used
            else "one fresh subprocess per row (VmHWM could not be reset)"
        ),
        "baseline = VmHWM (peak resident set) before the certification (after imports, model "
        "and certificate for the first N; the resident set left by the previous N for the "
        "next ones); peak = VmHWM after it; increase = peak − baseline",
        f"one batch of float32 noise is {batch * mb:.1f} MB; the {n_big:,} samples at once "
        f"would be {n_big * mb:,.0f} MB",
        f"PASS when the peak at N = {n_big:,} exceeds the peak at N = {n_small:,} by less "
        f"than 25% of the memory of the extra {n_big - n_small:,} samples "
        f"({0.25 * (n_big - n_small) * mb:,.0f} MB), i.e. memory is bounded by the batch, not "
        "N; the allocator makes the peak vary by up to ~10 batches from run to run, in either "
        "direction",
    ]
    cols = [
        "noise",
        "N",
        "batch",
        "baseline VmHWM",
        "peak VmHWM",
        "increase",
        "increase vs Gaussian",
        "certify wall time",
    ]
    if gpu:
        cols.append("GPU peak allocated")
    return Table(
        "memory", "4. Peak memory of a certification", cols + ["bounded by batch"], rows, notes
    )


# ------------------------------------------------------------------------------ report
def parallel_probe(repeats: int = 15) -> str:
    """Median time of one elementwise op on 10^6 float32 with all threads and with one: on a
    loaded machine the multi-threaded op waits for a descheduled worker thread."""
    x = torch.rand(1_000_000)
    threads = torch.get_num_threads()
    out = []
    for n in sorted({os.cpu_count() or 1, 1}, reverse=True):
        torch.set_num_threads(n)
        torch.exp(x)
        out.append(f"{fmt_time(_timed(lambda: torch.exp(x), repeats))} with {n} thread(s)")
    torch.set_num_threads(threads)
    return ", ".join(out)


def machine_info(device: str) -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = {
        "CPU": cpu,
        "logical cores": os.cpu_count(),
        "cores usable by this process": usable,
        "torch threads used": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "smoothcert": smoothcert.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["GPU"] = torch.cuda.get_device_name(0)
        info["CUDA"] = torch.version.cuda
    else:
        info["load probe at start: torch.exp on 10^6 float32"] = parallel_probe()
    try:
        info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return info


def render(
    tables: list[Table], info: dict, command: str, cfg: Config, started: str, elapsed: float
) -> str:
    if cfg.device.startswith("cuda"):
        timing_note = "GPU timings synchronise the device before and after every timed region."
    else:
        timing_note = (
            "Absolute times come from a machine that may be shared with other jobs (see the "
            "load averages below): they vary from run to run and are only indicative. The "
            "ratios to "
            "the Gaussian are the meaningful numbers: each is measured in the same run, with "
            "the noises interleaved inside every repeat, as a median over repeats."
        )
        if cfg.threads:
            timing_note += (
                f" torch ran with {cfg.threads} thread(s) (`--threads`): while another job "
                "holds a core, every multi-threaded torch op waits for a descheduled worker "
                "(see the load probe below), which would swamp the measurements."
            )
    lines = [
        "# Performance",
        "",
        "<!-- Generated by benchmarks/run.py; do not edit by hand: re-run the command below. -->",
        "",
        f"Generated {started} by `{command}` (profile `{cfg.profile}`, {elapsed:.0f} s in all).",
        "",
        timing_note,
        "",
        f"Noises: sigma0 = {SIGMA0} (sigma matched with `make_noise(..., sigma0=)`), "
        f"k = round({K_RATIO * 3072:.0f}/3072 · d) for the non-Gaussian families "
        "(the CIFAR-10 setting k = 500 at d = 3072, same ratio at every d); "
        "the l2 noises are certified against l2, the l∞ families against l∞.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines.append("")
    if cfg.notes:
        lines += ["## Run notes", ""] + [f"- {n}" for n in cfg.notes] + [""]
    lines += ["## Summary", ""]
    for t in tables:
        verdicts = [row[-1] for row in t.rows]
        failed = [
            " ".join(
                f"{c} = {v}" if c in ("d", "N") else str(v)
                for c, v in zip(t.columns[: t.label_cols], row, strict=False)
            )
            for row in t.rows
            if row[-1] == "FAIL"
        ]
        lines.append(
            f"- {t.title}: {verdicts.count('PASS')} PASS, {verdicts.count('FAIL')} "
            f"FAIL{' (' + '; '.join(failed) + ')' if failed else ''}, "
            f"{verdicts.count('—')} without a target"
        )
    lines += ["", "## Results", ""]
    for t in tables:
        lines += [t.markdown()]
    return "\n".join(lines)


SECTIONS = ("samplers", "certificates", "certify", "memory")
#: what main() runs: the sections above plus the forward passes of fixed N and adaptive
ALL_SECTIONS = SECTIONS + ("passes",)


def run(cfg: Config, log=print, sections=SECTIONS, workdir: Path | None = None) -> list[Table]:
    """Run the requested sections and return their tables in report order. Sections run as
    samplers, certificates, certify, memory: the certificate section leaves the tables on
    disk and in memory for the other two."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="smoothcert-bench-")) if own else Path(workdir)
    shared = workdir / "shared-cache"
    shared.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    tables = []
    try:
        with _cache_env(shared):
            for s in (s for s in ALL_SECTIONS if s in sections):
                log(f"== {s}")
                t0 = time.perf_counter()
                if s == "samplers":
                    t = bench_samplers(cfg, log)
                elif s == "certificates":
                    t = bench_certificates(cfg, workdir, shared, log)
                elif s == "certify":
                    t = bench_certify(cfg, log)
                elif s == "passes":
                    t = bench_passes(cfg, log)
                else:
                    t = bench_memory(cfg, shared, log)
                t.seconds = time.perf_counter() - t0
                t.notes.append(f"section wall time: {t.seconds:.0f} s")
                log(t.markdown())
                tables.append(t)
    finally:
        torch.set_num_threads(threads)
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    order = {"certify": 0, "passes": 0.5, "samplers": 1, "certificates": 2, "memory": 3}
    return sorted(tables, key=lambda t: order[t.key])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repeats (under a minute)"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="where noise is drawn and the models run (default cpu)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1 on cpu, see docs/performance.md; "
        "torch's own default on cuda)",
    )
    parser.add_argument(
        "--out",
        default=str(ROOT / "docs" / "performance.md"),
        help="markdown report to write (default docs/performance.md)",
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    cfg = make_config("quick" if args.quick else "full", args.device)
    cfg.threads = args.threads or (1 if args.device == "cpu" else None)
    if args.quick:
        cfg.notes.append(
            "--quick: smaller N, fewer repeats, fewer Monte Carlo samples and fewer noises in "
            "the memory section than the full run; the linf-mixed 60 s target needs the full "
            "run (default samples)"
        )
    else:
        reduced = ", ".join(
            f"{name} at d = {dim:,}: {mc_kwargs(cfg, name, dim)['samples']:,}"
            for dim in cfg.cert_dims
            for name in NOISES
            if "samples" in mc_kwargs(cfg, name, dim)
        )
        cfg.notes.append(
            f"full run: Monte Carlo tables with fewer samples than the default "
            f"{DEFAULT_SAMPLES:,} ({reduced}; see 'at default samples' in section 3) to keep "
            "the run under 10 minutes on a loaded machine; linf-mixed at d = 3072 uses the "
            "default, for its 60 s target"
        )
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = machine_info(args.device)
    if cfg.threads:
        info["torch threads used"] = cfg.threads
    t0 = time.perf_counter()
    tables = run(cfg, sections=ALL_SECTIONS)
    elapsed = time.perf_counter() - t0
    try:
        info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    shown = sys.argv[1:] if argv is None else argv
    command = "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in shown)
    text = render(tables, info, command, cfg, started, elapsed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
