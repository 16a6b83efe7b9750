"""Shared options of the commands that define a noise or run a smoothed classifier over a
dataset (radius, certify, predict).

- :func:`add_noise_arguments`: the options that define a noise (and its certificate);
- :func:`add_run_arguments`: DATASET CHECKPOINT OUTFILE and the options of the reference scripts
  (``--batch --skip --max --split``) plus ``--data-dir --device --seed``;
- :func:`job_options`: those options (and the noise's) as the keywords of the jobs.

The library does the rest: the checks of the values (:mod:`smoothcert.jobs.checks`, on
:mod:`smoothcert.checks`) and the run itself (data, model, noise, the results file, resume,
sharding) are :func:`smoothcert.jobs.certify_file` / :func:`~smoothcert.jobs.predict_file`.
This module imports no torch at import time (``smoothcert radius`` builds its parser from it).
"""

from __future__ import annotations

import argparse

#: the noise families (``smoothcert.noises.FAMILIES``; named here so that building a command's
#: parser does not import torch)
NOISE_NAMES = ("gaussian", "l2-family", "linf-mixed", "linf-pure")


class DefaultsOnceFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults formatter, except for a help text that already says its default
    (``(default: cuda when available, else cpu)`` is not followed by ``(default: None)``)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            "default" in text
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
        ):
            return text
        return super()._get_help_string(action)


# ----------------------------------------------------------------------------- arguments
def add_noise_arguments(
    parser: argparse.ArgumentParser, *, dim: bool = False, certificate: bool = True
) -> None:
    """The options that define a noise; ``dim`` adds ``--dim`` (commands without data),
    ``certificate`` adds the threat model and the Monte Carlo certificate options."""
    from ..certificates import DEFAULT_FAILURE_PROB, DEFAULT_SAMPLES

    g = parser.add_argument_group("noise")
    g.add_argument(
        "--noise",
        choices=NOISE_NAMES,
        default="gaussian",
        help="smoothing noise family (default: gaussian)",
    )
    if dim:
        g.add_argument("--dim", type=int, required=True, help="input dimension d")
    g.add_argument(
        "--k", type=float, default=0.0, help="shape parameter k (0 <= k < d; default: 0)"
    )
    s = g.add_mutually_exclusive_group(required=True)
    s.add_argument("--sigma", type=float, help="scale parameter sigma of the noise")
    s.add_argument(
        "--sigma0",
        type=float,
        help="match a Gaussian N(0, sigma0^2): sigma = sqrt((d-1)/(d-1-k)) sigma0",
    )
    if certificate:
        g.add_argument(
            "--norm", choices=["l2", "linf"], default="l2", help="threat model (default: l2)"
        )
        g.add_argument(
            "--cert-samples",
            type=int,
            default=DEFAULT_SAMPLES,
            help="Monte Carlo samples of a certificate table (l-inf families; "
            f"default: {DEFAULT_SAMPLES})",
        )
        g.add_argument(
            "--cert-failure-prob",
            type=float,
            default=DEFAULT_FAILURE_PROB,
            help="failure probability of a Monte Carlo certificate table "
            f"(default: {DEFAULT_FAILURE_PROB:g})",
        )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """DATASET CHECKPOINT OUTFILE and the options shared by certify and predict."""
    parser.add_argument(
        "dataset",
        metavar="DATASET",
        help="digits, digits32 (digits at 3x32x32), cifar10, imagenet, or a path to a dataset",
    )
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        help="saved base classifier ({'arch', 'state_dict', ...})",
    )
    parser.add_argument(
        "outfile",
        metavar="OUTFILE",
        help="tab-separated results; its configuration goes to "
        "OUTFILE.config.json; re-running the same command resumes",
    )
    parser.add_argument("--batch", type=int, default=1000, help="batch size (default: 1000)")
    parser.add_argument(
        "--skip", type=int, default=1, help="use every skip-th example (default: 1)"
    )
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="first index: the inputs are start, start + skip, ... (disjoint "
        "subsets of one split: e.g. --start 0 and --start 6 with --skip "
        "12; default: 0)",
    )
    parser.add_argument(
        "--max", type=int, default=-1, help="stop at this index (default: -1, the whole split)"
    )
    parser.add_argument(
        "--split", choices=["train", "test"], default="test", help="dataset split (default: test)"
    )
    parser.add_argument("--data-dir", default=None, help="where the dataset lives")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed; the noise of input idx is seeded from (seed, idx) (default: 0)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (default: bars on stderr)"
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="also load a CHECKPOINT that is a pickled module, a TorchScript or "
        "a torch.export file: this runs code stored in the file, so only "
        "for a file from a trusted source (default: tensors and plain "
        "data only)",
    )
    # -- distributed runs (smoothcert.distributed) --
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one shard per process of a torchrun job (automatic when RANK and "
        "WORLD_SIZE are set; this flag makes them required): rows go to "
        "OUTFILE.part-R-of-W, merged into OUTFILE at the end",
    )


def job_options(args) -> dict:
    """The keywords that :func:`smoothcert.jobs.certify_file` and
    :func:`~smoothcert.jobs.predict_file` share, from the parsed options of
    :func:`add_run_arguments` and the noise's ``--noise --k --sigma --sigma0``."""
    return {
        "noise": args.noise,
        "k": args.k,
        "sigma": args.sigma,
        "sigma0": args.sigma0,
        "batch": args.batch,
        "skip": args.skip,
        "start": args.start,
        "max": args.max,
        "split": args.split,
        "data_dir": args.data_dir,
        "device": args.device,
        "seed": args.seed,
        "trust_checkpoint": args.trust_checkpoint,
        "distributed_run": args.distributed,
        "progress": not args.no_progress,
    }
