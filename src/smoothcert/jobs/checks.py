"""The checks of the arguments of :func:`~smoothcert.jobs.certify_file` and
:func:`~smoothcert.jobs.predict_file`, run first by each, before anything is loaded, locked or
written: a bad value is a one-line :class:`~smoothcert.errors.SmoothCertError` naming the option
as ``smoothcert certify`` / ``predict`` spell it (keyword ``n``: ``--N``, ``n0``: ``--N0``,
``cert_samples``: ``--cert-samples``, the others the keyword with dashes). The CLI relies on
them (it checks nothing itself); the demo runs :func:`check_certify_args` on its configuration
before it trains. The defaults are :func:`certify_file`'s (a test compares them).
"""

from __future__ import annotations

from ..certificates import DEFAULT_FAILURE_PROB, DEFAULT_SAMPLES
from ..checks import check_alpha, check_positive_int, check_samples, check_seed
from ..errors import SmoothCertError
from ..results import check_outfile


def check_run_args(
    *, batch: int = 1000, skip: int = 1, start: int = 0, max: int = -1, seed: int = 0
) -> None:
    """The arguments certify and predict share, OUTFILE aside (checked last: that creates its
    folder)."""
    check_positive_int("--batch", batch)
    check_positive_int("--skip", skip)
    check_positive_int("--start", start, 0)
    check_positive_int("--max", max, -1)
    if max == 0:
        raise SmoothCertError(
            "--max 0 selects no input (--max is the index to stop at; -1: the whole split)"
        )
    check_seed(seed)


def check_certify_args(
    outfile,
    *,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    skip: int = 1,
    start: int = 0,
    max: int = -1,
    seed: int = 0,
    bilateral: bool = False,
    cert_samples: int = DEFAULT_SAMPLES,
    cert_failure_prob: float = DEFAULT_FAILURE_PROB,
    adaptive: bool = False,
    radii=None,
    rtol: float | None = None,
) -> None:
    """Every check of :func:`~smoothcert.jobs.certify_file`'s arguments of the same names."""
    check_run_args(batch=batch, skip=skip, start=start, max=max, seed=seed)
    check_samples("--N0", n0)
    check_samples("--N", n)
    check_alpha(alpha)
    check_samples("--cert-samples", cert_samples, 100)
    check_alpha(cert_failure_prob, "--cert-failure-prob")
    check_adaptive_args(adaptive=adaptive, bilateral=bilateral, radii=radii, rtol=rtol)
    check_outfile(outfile)


def check_adaptive_args(*, adaptive: bool, bilateral: bool, radii, rtol) -> None:
    """The options of sequential certification: --radii and --rtol only with --adaptive, not
    together (a grid decides its radii; rtol is the stopping rule without one), a valid grid,
    rtol > 0; no --bilateral."""
    if not adaptive:
        for flag, value in (("--radii", radii), ("--rtol", rtol)):
            if value is not None:
                raise SmoothCertError(
                    f"{flag} needs --adaptive (it sets the stopping rule of "
                    "sequential certification)"
                )
        return
    from .. import sequential  # scipy.stats: only for an adaptive run

    if bilateral:
        raise SmoothCertError(
            "--bilateral is not available with --adaptive (the sequential "
            "certificate bounds p_A only)"
        )
    if radii is not None:
        if rtol is not None:
            raise SmoothCertError(
                "--rtol applies without --radii: with a grid, sampling stops "
                "when the largest certified grid radius is decided"
            )
        try:
            sequential.check_radii(radii)
        except SmoothCertError as exc:
            raise SmoothCertError(f"--radii: {exc}") from None
    if rtol is not None:
        try:
            sequential.check_rtol(rtol)
        except SmoothCertError as exc:
            raise SmoothCertError(f"--rtol: {exc}") from None


def check_predict_args(
    outfile,
    *,
    n: int = 100_000,
    alpha: float = 0.001,
    batch: int = 1000,
    skip: int = 1,
    start: int = 0,
    max: int = -1,
    seed: int = 0,
) -> None:
    """Every check of :func:`~smoothcert.jobs.predict_file`'s arguments of the same names."""
    check_run_args(batch=batch, skip=skip, start=start, max=max, seed=seed)
    check_samples("--N", n)
    check_alpha(alpha)
    check_outfile(outfile)
