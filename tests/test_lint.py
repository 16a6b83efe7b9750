"""Lint and format: ``ruff check`` and ``ruff format --check`` over the tree (CI runs them here,
through the README's one test command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "scripts", "benchmarks"]

pytest.importorskip("ruff", reason="ruff is in the test extra: pip install -e '.[test]'")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_ruff_check_finds_nothing():
    """The lint rules of pyproject.toml hold on every source, test, script and benchmark."""
    proc = _ruff("check", "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-1000:]


def test_ruff_format_leaves_every_file_unchanged():
    """Every file is formatted as `ruff format` writes it (run it before committing)."""
    proc = _ruff("format", "--check", "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-1000:]
