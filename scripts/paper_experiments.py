#!/usr/bin/env python
"""Rerun the paper's CIFAR-10 / ImageNet experiments (section 5, Tables 1-4, Figure 5) with
smoothcert, on the published checkpoints. Meant for a machine with a GPU; not run in CI
(``--dry-run`` prints the commands, which ``tests/test_results_doc.py`` checks).

Checkpoints (the reference ``checkpoint.pth.tar`` files, loaded by ``smoothcert certify``):

- Cohen et al. (2019), CIFAR-10 ResNet-110: ``--cohen-cifar DIR`` holding ``noise_0.12``,
  ``noise_0.25``, ``noise_0.50``, ``noise_1.00`` (each with ``checkpoint.pth.tar``; the
  ``models/cifar10/resnet110`` folder of their release);
- Cohen et al. (2019), ImageNet ResNet-50: ``--cohen-imagenet DIR`` holding ``noise_0.25``,
  ``noise_0.50``, ``noise_1.00`` (``models/imagenet/resnet50``);
- Salman et al. (2019), CIFAR-10: ``--salman-cifar DIR``, searched recursively for
  ``.../noise_<sigma0>/checkpoint.pth.tar`` (every one is a classifier of the "best over
  classifiers" envelope of Table 3; sigma0 is read from the folder name).

Experiments (``--experiments``, default all), with the paper's settings: N = 100,000, N0 = 100,
alpha = 0.001, every 20th CIFAR-10 / 100th ImageNet test image, sigma matched to sigma0 by
sigma = sqrt((d-1)/(d-1-k)) sigma0:

- ``table1``: CIFAR-10 l2, Gaussian vs the l2 family k = 500 (Cohen's models);
- ``table2``: ImageNet l2, Gaussian vs the l2 family k = 50,000 (Cohen's models);
- ``table3``: CIFAR-10 l-inf, Gaussian (Theorem 3) vs the mixed l-inf family k = 250
  (Salman's models, or Cohen's when ``--salman-cifar`` is not given);
- ``figure5``: the same two l-inf certificates on Cohen's CIFAR-10 models, one curve per sigma0;
- ``table4``: CIFAR-10 l2 family k in {100, 200, 500, 1000, 2000} (Cohen's models).

Every certification is one ``smoothcert certify`` command (resumable: rerunning skips the rows
already written), then ``smoothcert analyze`` writes one table per method with the "best over
classifiers" envelope row (``--envelope``), and the script combines the envelope rows into the
paper's layouts (``OUTDIR/tables.md``). Multi-GPU: run the printed certify commands under
``torchrun --nproc-per-node G -m smoothcert certify ...`` instead (same files).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CIFAR_SIGMAS = ("0.12", "0.25", "0.50", "1.00")
IMAGENET_SIGMAS = ("0.25", "0.50", "1.00")
CIFAR_L2_RADII = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)  # Tables 1 and 4
# Table 2's header reads 0.5 1.0 1.5 1.0 2.0 2.5 3.0 (a typo); Cohen et al.'s ImageNet radii:
IMAGENET_L2_RADII = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
LINF_RADII_255 = (2, 4, 6, 8, 10, 12)  # Table 3, in units of 1/255
EXPERIMENTS = ("table1", "table2", "table3", "figure5", "table4")


@dataclass
class Cert:
    """One certify run."""

    experiment: str
    dataset: str
    checkpoint: str
    sigma0: float
    noise: str
    k: float
    norm: str
    outfile: str
    label: str


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for the layouts.",
    )
    p.add_argument(
        "--cohen-cifar",
        type=Path,
        default=Path("models/cifar10/resnet110"),
        help="Cohen et al.'s CIFAR-10 models (noise_0.12 ... noise_1.00)",
    )
    p.add_argument(
        "--cohen-imagenet",
        type=Path,
        default=Path("models/imagenet/resnet50"),
        help="Cohen et al.'s ImageNet models (noise_0.25 ... noise_1.00)",
    )
    p.add_argument(
        "--salman-cifar",
        type=Path,
        default=None,
        help="Salman et al.'s CIFAR-10 models (searched for noise_*/checkpoint.pth.tar)",
    )
    p.add_argument("--cifar-data", default=None, help="CIFAR-10 folder (certify --data-dir)")
    p.add_argument("--imagenet-data", default=None, help="ImageNet folder (certify --data-dir)")
    p.add_argument(
        "--outdir",
        type=Path,
        default=Path("results/paper"),
        help="results folder (default: results/paper)",
    )
    p.add_argument("--experiments", nargs="+", choices=[*EXPERIMENTS, "all"], default=["all"])
    p.add_argument("--N", type=int, default=100_000, help="samples for p_A (paper: 100,000)")
    p.add_argument("--N0", type=int, default=100, help="selection samples (paper: 100)")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability (0.001)")
    p.add_argument("--cifar-skip", type=int, default=20, help="every n-th CIFAR test image")
    p.add_argument("--imagenet-skip", type=int, default=100, help="every n-th ImageNet image")
    p.add_argument("--max", type=int, default=-1, help="stop at this index (-1: all)")
    p.add_argument("--k-cifar", type=float, default=500, help="l2 family k on CIFAR-10")
    p.add_argument("--k-imagenet", type=float, default=50_000, help="l2 family k on ImageNet")
    p.add_argument("--k-linf", type=float, default=250, help="mixed l-inf family k")
    p.add_argument(
        "--k-ablation",
        type=float,
        nargs="+",
        default=[100, 200, 500, 1000, 2000],
        help="Table 4 k values",
    )
    p.add_argument("--batch", type=int, default=400, help="certify batch size")
    p.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    p.add_argument("--seed", type=int, default=0, help="certify seed")
    p.add_argument(
        "--cert-samples",
        type=int,
        default=1_000_000,
        help="Monte Carlo samples of the l-inf certificate table (default: "
        "1,000,000; the paper drew 100,000)",
    )
    p.add_argument(
        "--cert-failure-prob",
        type=float,
        default=0.001,
        help="failure probability of the Monte Carlo certificate table (0.001, the "
        "paper's 99.9%% confidence)",
    )
    p.add_argument(
        "--python", default=sys.executable, help="python that runs smoothcert (default: this one)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = p.parse_args(argv)
    if "all" in args.experiments:
        args.experiments = list(EXPERIMENTS)
    return args


def _kname(k: float) -> str:
    return f"{k:g}"


def salman_checkpoints(folder: Path) -> list[tuple[str, float, str]]:
    """``(label, sigma0, path)`` of every ``.../noise_<s>/checkpoint.pth.tar`` under folder."""
    out = []
    for ckpt in sorted(folder.rglob("checkpoint.pth.tar")):
        m = re.fullmatch(r"noise_(\d+(?:\.\d+)?)", ckpt.parent.name)
        if m:
            rel = ckpt.parent.relative_to(folder).as_posix().replace("/", "_")
            out.append((rel, float(m[1]), str(ckpt)))
    return out


def plan(args) -> list[Cert]:
    out: list[Cert] = []
    od = args.outdir

    def add(exp, dataset, ckpt, sigma0, noise, k, norm, sub, label):
        stem = "gaussian" if noise == "gaussian" else f"{noise}_k{_kname(k)}"
        outfile = od / dataset / sub / f"{stem}_{norm}.tsv"
        out.append(
            Cert(exp, dataset, str(ckpt), float(sigma0), noise, float(k), norm, str(outfile), label)
        )

    cohen_c = [(s, args.cohen_cifar / f"noise_{s}" / "checkpoint.pth.tar") for s in CIFAR_SIGMAS]
    cohen_i = [
        (s, args.cohen_imagenet / f"noise_{s}" / "checkpoint.pth.tar") for s in IMAGENET_SIGMAS
    ]
    ex = args.experiments
    if "table1" in ex or "table4" in ex:
        for s, ck in cohen_c:
            add("table1", "cifar10", ck, s, "gaussian", 0, "l2", f"cohen/noise_{s}", f"noise_{s}")
    if "table1" in ex:
        for s, ck in cohen_c:
            add(
                "table1",
                "cifar10",
                ck,
                s,
                "l2-family",
                args.k_cifar,
                "l2",
                f"cohen/noise_{s}",
                f"noise_{s}",
            )
    if "table2" in ex:
        for s, ck in cohen_i:
            add("table2", "imagenet", ck, s, "gaussian", 0, "l2", f"cohen/noise_{s}", f"noise_{s}")
            add(
                "table2",
                "imagenet",
                ck,
                s,
                "l2-family",
                args.k_imagenet,
                "l2",
                f"cohen/noise_{s}",
                f"noise_{s}",
            )
    if "table3" in ex:
        models = (
            salman_checkpoints(args.salman_cifar)
            if args.salman_cifar is not None
            else [(f"noise_{s}", float(s), str(ck)) for s, ck in cohen_c]
        )
        if args.salman_cifar is not None and not models:
            print(
                f"# table3: no noise_*/checkpoint.pth.tar under {args.salman_cifar}",
                file=sys.stderr,
            )
        src = "salman" if args.salman_cifar is not None else "cohen"
        for label, s, ck in models:
            sub = f"{src}/{label}"
            add("table3", "cifar10", ck, s, "gaussian", 0, "linf", sub, label)
            add("table3", "cifar10", ck, s, "linf-mixed", args.k_linf, "linf", sub, label)
    if "figure5" in ex:
        for s, ck in cohen_c:
            add(
                "figure5", "cifar10", ck, s, "gaussian", 0, "linf", f"cohen/noise_{s}", f"noise_{s}"
            )
            add(
                "figure5",
                "cifar10",
                ck,
                s,
                "linf-mixed",
                args.k_linf,
                "linf",
                f"cohen/noise_{s}",
                f"noise_{s}",
            )
    if "table4" in ex:
        for k in args.k_ablation:
            if "table1" in ex and k == args.k_cifar:
                continue  # already in table1
            for s, ck in cohen_c:
                add(
                    "table4",
                    "cifar10",
                    ck,
                    s,
                    "l2-family",
                    k,
                    "l2",
                    f"cohen/noise_{s}",
                    f"noise_{s}",
                )
    seen, unique = set(), []
    for c in out:  # table3 (Cohen's models) and figure5 share their runs
        if c.outfile not in seen:
            seen.add(c.outfile)
            unique.append(c)
    return unique


def certify_command(args, c: Cert) -> list[str]:
    data_dir = args.cifar_data if c.dataset == "cifar10" else args.imagenet_data
    skip = args.cifar_skip if c.dataset == "cifar10" else args.imagenet_skip
    cmd = [
        args.python,
        "-m",
        "smoothcert",
        "certify",
        c.dataset,
        c.checkpoint,
        c.outfile,
        "--noise",
        c.noise,
        "--sigma0",
        f"{c.sigma0:g}",
        "--norm",
        c.norm,
        "--N0",
        str(args.N0),
        "--N",
        str(args.N),
        "--alpha",
        f"{args.alpha:g}",
        "--batch",
        str(args.batch),
        "--skip",
        str(skip),
        "--max",
        str(args.max),
        "--device",
        args.device,
        "--seed",
        str(args.seed),
    ]
    if c.noise != "gaussian":
        cmd[cmd.index("--sigma0") : cmd.index("--sigma0")] = ["--k", _kname(c.k)]
    if c.noise == "linf-mixed":
        cmd += [
            "--cert-samples",
            str(args.cert_samples),
            "--cert-failure-prob",
            f"{args.cert_failure_prob:g}",
        ]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    return cmd


def _radii(dataset: str, norm: str) -> list[str]:
    if norm == "linf":
        return [f"{r / 255:.6g}" for r in LINF_RADII_255]
    return [f"{r:g}" for r in (IMAGENET_L2_RADII if dataset == "imagenet" else CIFAR_L2_RADII)]


def analyze_commands(args, certs: list[Cert]) -> list[tuple[str, list[str]]]:
    """``smoothcert analyze`` tables: per (models, method) one table with a row per classifier
    and the "best over classifiers" envelope (``--envelope``); for Figure 5 one plot per sigma0
    with both l-inf methods."""
    tables = args.outdir / "tables"
    base = [args.python, "-m", "smoothcert", "analyze"]
    groups: dict[tuple, list[Cert]] = {}
    for c in certs:
        source = Path(c.outfile).relative_to(args.outdir / c.dataset).parts[0]
        groups.setdefault((c.dataset, source, c.norm, c.noise, c.k), []).append(c)
    cmds = []
    for (dataset, source, norm, noise, k), cs in groups.items():
        name = f"{dataset}_{source}_{norm}_{noise}" + (
            "" if noise == "gaussian" else f"_k{_kname(k)}"
        )
        cmds.append(
            (
                name,
                [
                    *base,
                    *[f"{c.label}={c.outfile}" for c in cs],
                    "--radii",
                    *_radii(dataset, norm),
                    "--envelope",
                    "--best",
                    "all",
                    "--output",
                    str(tables / f"{name}.md"),
                ],
            )
        )
    if "figure5" in args.experiments:
        fig = [
            c
            for c in certs
            if c.experiment == "figure5" or (c.experiment == "table3" and args.salman_cifar is None)
        ]
        for s in sorted({c.sigma0 for c in fig}):
            cs = [c for c in fig if c.sigma0 == s]
            labels = [
                "Gaussian" if c.noise == "gaussian" else f"{c.noise} k {_kname(c.k)}" for c in cs
            ]
            cmds.append(
                (
                    f"figure5 sigma0 = {s:g}",
                    [
                        *base,
                        *[f"{lab}={c.outfile}" for lab, c in zip(labels, cs, strict=True)],
                        "--radii",
                        *_radii("cifar10", "linf"),
                        "--best",
                        "all",
                        "--output",
                        str(tables / f"figure5_noise_{s:.2f}.md"),
                        "--plot",
                        str(tables / f"figure5_noise_{s:.2f}.png"),
                        "--norm-label",
                        "l-inf radius",
                        "--max-radius",
                        f"{40 / 255:.6g}",
                    ],
                )
            )
    return cmds


def summary_tables(args, certs: list[Cert]) -> str:
    """The paper's layouts: one envelope row per method (after the runs)."""
    from smoothcert.analysis import certified_accuracy, format_radius, format_table, read_results

    layouts = [
        (
            "Table 1: CIFAR-10, l2",
            "cifar10",
            "l2",
            CIFAR_L2_RADII,
            [("gaussian", 0.0), ("l2-family", args.k_cifar)],
        ),
        (
            "Table 2: ImageNet, l2",
            "imagenet",
            "l2",
            IMAGENET_L2_RADII,
            [("gaussian", 0.0), ("l2-family", args.k_imagenet)],
        ),
        (
            "Table 3: CIFAR-10, l-inf",
            "cifar10",
            "linf",
            tuple(r / 255 for r in LINF_RADII_255),
            [("gaussian", 0.0), ("linf-mixed", args.k_linf)],
        ),
        (
            "Table 4: CIFAR-10, l2, ablation over k",
            "cifar10",
            "l2",
            CIFAR_L2_RADII,
            [("gaussian", 0.0)] + [("l2-family", k) for k in args.k_ablation],
        ),
    ]
    out = []
    for title, dataset, norm, radii, methods in layouts:
        rows = []
        for noise, k in methods:
            files = [
                c
                for c in certs
                if c.dataset == dataset
                and c.norm == norm
                and c.noise == noise
                and c.k == k
                and Path(c.outfile).exists()
                and (norm == "l2" or c.experiment == "table3")
            ]
            if not files:
                continue
            acc = [certified_accuracy(read_results(c.outfile), radii) for c in files]
            name = "Gaussian" if noise == "gaussian" else f"{noise} k = {_kname(k)}"
            rows.append(
                (
                    f"{name} (best over {len(files)} classifiers)",
                    [max(a[i] for a in acc) for i in range(len(radii))],
                )
            )
        if rows:
            table = format_table(rows, radii, "markdown", best="all")
            if norm == "linf":  # the paper's header: r = 2/255, ...
                head, rest = table.split("\n", 1)
                for v in LINF_RADII_255:
                    head = head.replace(f"r = {format_radius(v / 255)} |", f"r = {v}/255 |", 1)
                table = head + "\n" + rest
            out += [f"## {title}", "", table, ""]
    return "\n".join(out)


def main(argv=None) -> int:
    args = parse_args(argv)
    certs = plan(args)
    analyses = analyze_commands(args, certs)
    if args.dry_run:
        print(f"# {len(certs)} certify runs, then {len(analyses)} analyze tables")
        for c in certs:
            print(
                f"# {c.experiment}: {c.dataset} sigma0 = {c.sigma0:g} {c.noise} "
                f"k = {_kname(c.k)} {c.norm}"
            )
            print(shlex.join(certify_command(args, c)))
        for name, cmd in analyses:
            print(f"# analyze {name}")
            print(shlex.join(cmd))
        print(f"# then: the paper's layouts (envelope rows) -> {args.outdir / 'tables.md'}")
        return 0
    missing = sorted({c.checkpoint for c in certs if not Path(c.checkpoint).is_file()})
    if missing:
        print("missing checkpoints:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    for i, c in enumerate(certs, 1):
        Path(c.outfile).parent.mkdir(parents=True, exist_ok=True)
        cmd = certify_command(args, c)
        print(f"[{i}/{len(certs)}] {shlex.join(cmd)}", flush=True)
        rc = subprocess.call(cmd)
        if rc:
            print(f"certify failed (exit {rc}); rerun to resume", file=sys.stderr)
            return rc
    (args.outdir / "tables").mkdir(parents=True, exist_ok=True)
    for name, cmd in analyses:
        print(f"analyze {name}", flush=True)
        rc = subprocess.call(cmd)
        if rc:
            return rc
    summary = args.outdir / "tables.md"
    summary.write_text(summary_tables(args, certs))
    print(f"wrote {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
