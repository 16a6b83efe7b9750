"""Shared test set-up: one torch thread, and every test its own empty certificate cache (disk and
memory)."""

import numpy as np
import pytest
import torch

from smoothcert.certificates import cache


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op torch thread for the whole run: the tests use small tensors, for which
    threads only add synchronisation (on a busy 2-core machine a 5,000-element op took 16 ms
    with 2 threads against 10 us with 1, and small convolutions slowed down likewise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_certificate_cache(tmp_path, monkeypatch):
    """Point ``$SMOOTHCERT_CACHE`` at a fresh directory and start from an empty memo, so that no
    test reads a table another test (or the user's cache) produced."""
    monkeypatch.setenv("SMOOTHCERT_CACHE", str(tmp_path / "smoothcert-cache"))
    cache._MEMORY.clear()
    yield
    cache._MEMORY.clear()


def _mixed_linf_by_cube_polar(rng, n, d, k, sigma):
    """Exact i.i.d. draws from pi_0(z) ~ ||z||_inf^-k exp(-||z||_2^2 / (2 sigma^2)) (eq. 9) by a
    route independent of the package's sampler: z = m s with s on the surface of [-1, 1]^d
    (dz = m^{d-1} dm dS(s) for the cube), so s has density ~ ||s||_2^{-(d-k)} w.r.t. the uniform
    surface measure (accept a uniform s with that probability, <= 1) and, given s,
    m^2 ||s||^2 / (2 sigma^2) ~ Gamma((d - k) / 2)."""
    parts, have = [], 0
    while have < n:
        size = 2 * (n - have) + 64
        s = rng.uniform(-1.0, 1.0, (size, d))
        s[np.arange(size), rng.integers(d, size=size)] = rng.choice([-1.0, 1.0], size=size)
        s2 = np.sum(s * s, axis=1)
        keep = rng.random(size) < s2 ** (-(d - k) / 2)
        s, s2 = s[keep], s2[keep]
        m = sigma * np.sqrt(2 * rng.gamma((d - k) / 2, size=s.shape[0]) / s2)
        parts.append(m[:, None] * s)
        have += s.shape[0]
    return np.concatenate(parts)[:n]


@pytest.fixture
def mixed_linf_reference_sampler():
    """An independent exact sampler of the mixed-norm noise (for distribution tests)."""
    return _mixed_linf_by_cube_polar


#: torchrun's environment: cleared for the CLI tests, which must run as a single process
JOB_ENV = [
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A certificate cache for the whole module (and no torchrun variables)."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cache")
        mp.setenv("SMOOTHCERT_CACHE", str(path))
        for name in JOB_ENV:
            mp.delenv(name, raising=False)
        yield path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cache_dir):
    """An untrained digits_cnn in the reference checkpoint format (seed 0), as a path string."""
    from smoothcert.models import get_architecture, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "digits.pth.tar"
    save_checkpoint(str(path), get_architecture("digits_cnn", "digits"), "digits_cnn")
    return str(path)
