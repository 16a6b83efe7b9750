"""smoothcert.jobs.derive_linf_file: the Gaussian's l-inf results derived from its l2 run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smoothcert.jobs import derive_linf_file

RESULTS = Path(__file__).resolve().parents[1] / "results"
DERIVED = sorted(
    p
    for p in RESULTS.rglob("gaussian_linf.tsv.config.json")
    if "derived_from" in json.loads(p.read_text(encoding="utf-8"))
)


@pytest.mark.skipif(not DERIVED, reason="no derived results stored")
@pytest.mark.parametrize("config_file", DERIVED[:2], ids=lambda p: str(p.relative_to(RESULTS)))
def test_derive_linf_file_reproduces_stored_results(tmp_path, config_file):
    """The one derivation (Theorem 3) rewrites a stored l2 run into the stored l-inf file and
    configuration byte for byte (the demo and the experiment script share it)."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    stored = config_file.with_name(config_file.name.removesuffix(".config.json"))
    out = tmp_path / stored.name
    derive_linf_file(
        stored.with_name(config["derived_from"]["file"]),
        out,
        dim=config["dim"],
        sigma0=config["sigma0"],
    )
    assert out.read_bytes() == stored.read_bytes()
    assert out.with_name(out.name + ".config.json").read_bytes() == config_file.read_bytes()
