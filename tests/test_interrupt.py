"""Interrupted runs: ``smoothcert certify`` and ``smoothcert train`` killed with SIGKILL at
random points (fixed seed for the kill plan), then rerun until they finish, end with exactly the
result of an uninterrupted run with the same seed:

* certify: the same rows (every column but ``time``), none lost or doubled, one header, no torn
  last line (a torn line is also injected once, as a crash in the middle of a write leaves it);
* train: bit-identical final weights and optimizer state, and the same log rows (but ``time``):
  ``train`` re-seeds every random stream from (seed, epoch) and resumes from the checkpoint it
  replaces atomically after each epoch (see ``smoothcert.training``).

The experiments are plain functions (:func:`certify_kill_experiment`,
:func:`train_kill_experiment`) that ``scripts/reliability_report.py`` also runs. The processes
use one torch thread (``OMP_NUM_THREADS=1``): faster on small CPUs and the same arithmetic in
every run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

KILL_SEED = 1234
TIMEOUT_S = 300

CERTIFY_ARGS = [
    "--sigma",
    "0.25",
    "--N0",
    "50",
    "--N",
    "4000",
    "--batch",
    "1000",
    "--skip",
    "36",
    "--device",
    "cpu",
    "--seed",
    "7",
]
CERTIFY_ROWS = 10  # 360 test images, every 36th
TRAIN_ARGS = [
    "--sigma",
    "0.25",
    "--epochs",
    "3",
    "--batch",
    "16",
    "--lr",
    "0.05",
    "--no-progress",
    "--device",
    "cpu",
    "--seed",
    "3",
]
TRAIN_EPOCHS = 3


def smoothcert(*args) -> list[str]:
    return [sys.executable, "-m", "smoothcert", *map(str, args)]


def child_env(root: Path) -> dict:
    return {
        **os.environ,
        "SMOOTHCERT_CACHE": str(root / "cache"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def complete_lines(path: Path) -> int:
    """Number of complete (newline-terminated) lines of ``path`` (0 when missing)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@dataclass
class KillReport:
    """What happened to one interrupted job."""

    name: str
    kills: int = 0  #: SIGKILLs that hit a running process
    kills_mid_run: int = 0  #: of which with some but not all of the work saved
    runs: int = 0  #: processes started in all (kills + reruns)
    events: list = field(default_factory=list)
    identical: bool = False  #: final result == uninterrupted run


def run_to_completion(argv, env, cwd) -> None:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-2000:]


def run_with_kills(
    argv, env, cwd, plan, progress, total, report: KillReport, before_rerun=None, max_reruns=10
) -> None:
    """For each ``(at_least, delay_s)`` of ``plan``: start ``argv``, wait until
    ``progress() >= at_least`` (or the process ends), sleep ``delay_s``, SIGKILL it. Then rerun
    until the command succeeds. ``before_rerun(i)`` may damage the files after kill ``i``."""
    for i, (at_least, delay) in enumerate(plan):
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        report.runs += 1
        start = time.monotonic()
        while proc.poll() is None and progress() < at_least:
            if time.monotonic() - start > TIMEOUT_S:
                proc.kill()
                raise AssertionError(f"{report.name}: no progress in {TIMEOUT_S} s")
            time.sleep(0.01)
        time.sleep(delay)
        done = progress()
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            report.kills += 1
            report.kills_mid_run += 0 < done < total
            report.events.append(
                f"killed at {done}/{total} (waited for {at_least}, then {delay:.2f} s)"
            )
        else:
            report.events.append(f"finished before kill {i + 1} (status {proc.returncode})")
        proc.communicate(timeout=TIMEOUT_S)
        if before_rerun is not None:
            before_rerun(i)
    for _ in range(max_reruns):
        proc = subprocess.run(
            argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S
        )
        report.runs += 1
        if proc.returncode == 0:
            report.events.append("rerun: done")
            return
        report.events.append(f"rerun: status {proc.returncode}: {proc.stderr[-300:]!r}")
    raise AssertionError(f"{report.name}: did not finish: {report.events}")


def kill_plan(rng: random.Random, total: int, unit_s: float) -> list[tuple[int, float]]:
    """Three kills: one at a random time from the start (often during start-up), two after a
    random amount of saved work plus a random fraction of one unit of work."""
    first = rng.randint(1, max(1, total // 2))
    second = rng.randint(first, max(first, total - 1))
    return [
        (0, rng.uniform(0.0, 4.0)),
        (first, rng.uniform(0.0, unit_s)),
        (second, rng.uniform(0.0, unit_s)),
    ]


# ----------------------------------------------------------------------------- certify
def tiny_checkpoint(path: Path) -> Path:
    from smoothcert.models import get_architecture, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(path, get_architecture("digits_cnn", "digits"), "digits_cnn")
    return path


def rows_without_time(path: Path) -> list[str]:
    return [
        "\t".join(c for j, c in enumerate(line.split("\t")) if j != 5)
        for line in path.read_text().splitlines()
    ]


def certify_kill_experiment(root: Path, seed: int = KILL_SEED) -> KillReport:
    """Kill ``smoothcert certify`` three times, rerun to the end, compare with a clean run."""
    root.mkdir(parents=True, exist_ok=True)
    env = child_env(root)
    ckpt = tiny_checkpoint(root / "digits_cnn.pth.tar")
    reference, out = root / "reference.tsv", root / "interrupted.tsv"
    run_to_completion(smoothcert("certify", "digits", ckpt, reference, *CERTIFY_ARGS), env, root)
    rows = rows_without_time(reference)
    assert len(rows) == 1 + CERTIFY_ROWS

    report = KillReport("certify")
    rng = random.Random(seed)

    def progress():
        return max(0, complete_lines(out) - 1)

    def tear(i):  # after the second kill: a row cut in the middle of its write
        if i == 1 and out.exists() and out.read_bytes().endswith(b"\n"):
            with open(out, "ab") as f:
                f.write(b"999\t3\t8\t0.2")
            report.events.append("appended a torn row")

    run_with_kills(
        smoothcert("certify", "digits", ckpt, out, *CERTIFY_ARGS),
        env,
        root,
        kill_plan(rng, CERTIFY_ROWS, 0.3),
        progress,
        CERTIFY_ROWS,
        report,
        before_rerun=tear,
    )
    data = out.read_bytes()
    final = rows_without_time(out)
    indices = [line.split("\t")[0] for line in final[1:]]
    report.identical = data.endswith(b"\n") and final == rows and len(indices) == len(set(indices))
    return report


# ----------------------------------------------------------------------------- train
def train_kill_experiment(root: Path, seed: int = KILL_SEED) -> KillReport:
    """Kill ``smoothcert train`` three times (during start-up or an epoch), rerun until it has
    trained every epoch, compare weights, optimizer state and log with a clean run."""
    root.mkdir(parents=True, exist_ok=True)
    env = child_env(root)
    ref_dir, out_dir = root / "reference", root / "interrupted"
    t0 = time.monotonic()
    run_to_completion(smoothcert("train", "digits", "digits_cnn", ref_dir, *TRAIN_ARGS), env, root)
    epoch_s = max(0.05, (time.monotonic() - t0 - 2.0) / TRAIN_EPOCHS)

    report = KillReport("train")
    rng = random.Random(seed + 1)

    def progress():  # epochs whose log row is written (the checkpoint follows it)
        return max(0, complete_lines(out_dir / "log") - 1)

    run_with_kills(
        smoothcert("train", "digits", "digits_cnn", out_dir, *TRAIN_ARGS),
        env,
        root,
        kill_plan(rng, TRAIN_EPOCHS, epoch_s),
        progress,
        TRAIN_EPOCHS,
        report,
    )
    ref = torch.load(ref_dir / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    got = torch.load(out_dir / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    same_weights = ref["state_dict"].keys() == got["state_dict"].keys() and all(
        torch.equal(ref["state_dict"][k], got["state_dict"][k]) for k in ref["state_dict"]
    )
    same_optimizer = _same_tree(ref["optimizer"], got["optimizer"])

    def log_rows(path):
        return [
            "\t".join(c for j, c in enumerate(line.split("\t")) if j != 1)
            for line in path.read_text().splitlines()
        ]

    report.identical = (
        got["epoch"] == ref["epoch"] == TRAIN_EPOCHS
        and same_weights
        and same_optimizer
        and log_rows(out_dir / "log") == log_rows(ref_dir / "log")
    )
    report.events.append(
        f"weights identical: {same_weights}, optimizer identical: {same_optimizer}"
    )
    return report


def _same_tree(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# ----------------------------------------------------------------------------- tests
def test_certify_killed_three_times_equals_an_uninterrupted_run(tmp_path):
    report = certify_kill_experiment(tmp_path)
    assert report.identical, report.events
    assert report.kills >= 2 and report.kills_mid_run >= 1, report.events


def test_train_killed_three_times_equals_an_uninterrupted_run(tmp_path):
    report = train_kill_experiment(tmp_path)
    assert report.identical, report.events
    assert report.kills >= 2, report.events
