"""Content-addressed on-disk cache of certificate tables.

A table is stored as ``<sha256 of its parameters>.npz`` under ``$SMOOTHCERT_CACHE`` (or the user
cache directory, e.g. ``~/.cache/smoothcert``), holding the radii, the thresholds, the
parameters (checked on load) and small metadata. Files are written atomically; an unreadable
or mismatching file is rebuilt, never trusted. Tables are also memoised in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

_MEMORY: dict[str, tuple] = {}


def cache_dir() -> Path:
    env = os.environ.get("SMOOTHCERT_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("smoothcert"))


def table_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:32]


def cached_table(params: dict, build, use_cache: bool = True):
    """Return ``(radii, thresholds, info)`` for ``params``, building it with ``build()`` once."""
    key = table_key(params)
    if use_cache and key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"{key}.npz"
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                stored = json.loads(str(f["params"]))
                if stored != json.loads(json.dumps(params, sort_keys=True)):
                    raise ValueError("parameters differ")
                result = (f["radii"].copy(), f["thresholds"].copy(), json.loads(str(f["info"])))
            if not (np.all(np.diff(result[0]) > 0) and np.all(np.isfinite(result[0]))):
                raise ValueError("radii not increasing")
            _MEMORY[key] = result
            return result
        except Exception as exc:  # corrupt or foreign file: rebuild
            warnings.warn(f"ignoring unreadable certificate cache file {path}: {exc}",
                          stacklevel=2)
    radii, thresholds, info = build()
    result = (np.asarray(radii, float), np.asarray(thresholds, float), dict(info))
    if use_cache:
        _MEMORY[key] = result
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
            os.close(fd)
            np.savez(tmp, radii=result[0], thresholds=result[1],
                     params=json.dumps(params, sort_keys=True), info=json.dumps(result[2]))
            os.replace(tmp, path)
        except OSError as exc:
            warnings.warn(f"could not write certificate cache {path}: {exc}", stacklevel=2)
    return result
