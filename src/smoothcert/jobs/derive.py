"""A results file derived from another without sampling: :func:`derive_linf_file`, the Gaussian's
l-inf results from its l2 run by Theorem 3 (used by ``smoothcert demo`` and the experiment
scripts)."""

from __future__ import annotations

import json
from pathlib import Path

#: the rule recorded in the derived file's configuration
THEOREM3_RULE = (
    "Theorem 3: radius = sigma Phi^-1(pA_lower) / sqrt(d), rounded toward zero, "
    "from the l2 run's pA_lower (the same noise samples)"
)


def derive_linf_file(l2_file, outfile, *, dim: int, sigma0: float) -> None:
    """Write OUTFILE (and ``OUTFILE.config.json``): the l-inf results of the Gaussian noise of
    standard deviation ``sigma0`` in dimension ``dim`` from its l2 run ``l2_file`` (Theorem 3).
    The same rows (the same noise samples, hence the same pA_lower), each radius the l-inf
    certificate's radius of that pA_lower, sigma Phi^-1(pA_lower) / sqrt(d) rounded toward zero
    (0 for an abstention). Nothing is sampled again; the configuration is the l2 run's with the
    norm, the certificate and ``derived_from`` (the l2 file's name, SHA-256 and the rule)."""
    from ..analysis import EXACT_RADIUS_COLUMN, format_radius_cell
    from ..certificates import get_certificate
    from ..models import file_sha256
    from ..noises import Gaussian
    from ..results import config_path, write_text_atomic

    l2_file, outfile = Path(l2_file), Path(outfile)
    cert = get_certificate(Gaussian(dim, sigma=sigma0), "linf")
    lines = l2_file.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    col = {
        name: head.index(name) for name in ("predict", "radius", "pA_lower", EXACT_RADIUS_COLUMN)
    }
    rows = []
    for line in lines[1:]:
        cells = line.split("\t")
        abstain = int(cells[col["predict"]]) == -1
        radius = 0.0 if abstain else float(cert.radius(float(cells[col["pA_lower"]])))
        cells[col["radius"]] = format_radius_cell(radius)
        cells[col[EXACT_RADIUS_COLUMN]] = repr(radius)
        rows.append("\t".join(cells))
    config = json.loads(config_path(l2_file).read_text(encoding="utf-8"))
    config.update(
        norm="linf",
        certificate=cert.describe(),
        derived_from={"file": l2_file.name, "sha256": file_sha256(l2_file), "rule": THEOREM3_RULE},
    )
    write_text_atomic(config_path(outfile), json.dumps(config, indent=2) + "\n")
    write_text_atomic(outfile, "\n".join([lines[0], *rows]) + "\n")
