"""Runs over a data set into a results file: the jobs behind ``smoothcert certify`` and
``smoothcert predict``, called by the CLI (which parses the options) and the demo.

- :func:`certify_file` (:mod:`.certify`): CERTIFY on every selected input, one row each;
- :func:`predict_file` (:mod:`.predict`): PREDICT on every selected input, one row each;
- :func:`derive_linf_file` (:mod:`.derive`): the Gaussian's l-inf results from its l2 run
  (Theorem 3, no sampling).

Each one loads the data and the model, builds the noise and the :class:`~smoothcert.Smooth`,
writes OUTFILE and ``OUTFILE.config.json`` (its configuration, with the equivalent command line)
through :mod:`smoothcert.results`, resumes a file already there (rows read back are checked),
and, in a torchrun job, computes this process's shard into a part file that rank 0 merges
(:mod:`smoothcert.distributed`). Each checks its arguments first (:mod:`.checks`: one-line
errors naming the option, before anything is loaded or written). The shared steps are in
:mod:`.common`.
"""

from __future__ import annotations

from .certify import certify_file
from .common import RunSummary
from .derive import derive_linf_file
from .predict import predict_file

__all__ = ["RunSummary", "certify_file", "derive_linf_file", "predict_file"]
