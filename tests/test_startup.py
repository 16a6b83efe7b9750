"""Start-up of the command line: the commands that need no tensor never import torch.

`smoothcert radius` with a closed-form or quadrature certificate is a few scipy calls; importing
torch (pulled in by the noise modules) made it take ~3 s of CPU. The noise modules import torch
inside the methods that make or use tensors, and scipy.stats / scipy.optimize are imported where
used, so these calls cost about `import numpy, scipy.special`. (`--help`, `--version` and
`analyze` are checked in test_newcomer.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_RUN = """
import sys
from smoothcert.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] if m.startswith("torch") else ".".join(m.split(".")[:2])
                for m in sys.modules
                if m == "torch" or m.startswith(("torch.", "scipy.stats", "scipy.optimize"))})
print("RC", rc, "HEAVY", " ".join(heavy) or "-")
"""


def _run(argv, cache_dir):
    proc = subprocess.run(
        [sys.executable, "-c", _RUN, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, SMOOTHCERT_CACHE=str(cache_dir)),
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert last.startswith("RC 0 "), proc.stdout + proc.stderr
    return proc.stdout.strip().splitlines()[0], last.split("HEAVY ", 1)[1].split()


_CLOSED_FORM = [
    ["--noise", "gaussian", "--dim", "3072", "--sigma", "0.25", "--p", "0.9"],
    [
        "--noise",
        "gaussian",
        "--dim",
        "3072",
        "--sigma0",
        "0.5",
        "--p",
        "0.99",
        "--norm",
        "linf",
        "--json",
    ],
    ["--noise", "l2-family", "--dim", "3072", "--sigma", "0.25", "--p", "0.9"],
]


@pytest.mark.parametrize("args", _CLOSED_FORM)
def test_closed_form_radius_imports_neither_torch_nor_scipy_stats(args, tmp_path):
    """`smoothcert radius` with the closed-form certificate (Gaussian, or the l2 family at k = 0,
    either norm) imports neither torch nor scipy.stats/scipy.optimize (it took ~2.7 s of CPU
    with torch, ~0.45 s without)."""
    _, heavy = _run(["radius", *args], tmp_path)
    assert heavy == ["-"], heavy


def test_quadrature_radius_does_not_import_torch(tmp_path):
    """`smoothcert radius` with the l2 family's quadrature certificate (k > 0) does not import
    torch, neither when it builds the table nor when it reads it from the cache."""
    args = [
        "radius",
        "--noise",
        "l2-family",
        "--dim",
        "16",
        "--k",
        "4",
        "--sigma",
        "0.5",
        "--p",
        "0.8",
    ]
    first, heavy = _run(args, tmp_path)
    assert "torch" not in heavy, heavy
    again, heavy = _run(args, tmp_path)  # from the cache
    assert "torch" not in heavy, heavy
    assert again == first and float(first) > 0


def test_noises_still_work_after_the_lazy_imports():
    """The noise classes keep their torch.distributions-style API with torch imported lazily:
    sample() defaults to float32 (the default dtype is now None), log_prob and log_ratio run."""
    import torch

    from smoothcert.noises import FAMILIES

    gen = torch.Generator().manual_seed(0)
    for cls in FAMILIES.values():
        noise = cls(5, sigma=0.5, k=1.0 if cls.name != "gaussian" else 0.0)
        z = noise.sample(4, generator=gen)
        assert z.shape == (4, 5) and z.dtype == torch.float32
        assert noise.sample(2, generator=gen, dtype=torch.float64).dtype == torch.float64
        assert noise.log_prob(z).shape == (4,)
        assert noise.log_ratio(z, noise.worst_case_delta(0.1, noise.norms[-1])).shape == (4,)
