"""Entry point of the ``smoothcert`` command: one sub-command per module of this package.

Every module listed in ``COMMANDS`` defines ``add_parser(subparsers)`` (which registers its
arguments and sets ``func``) . A :class:`~smoothcert.errors.SmoothCertError` raised anywhere
becomes one line on stderr and exit status 2; argparse errors also exit with 2.

Only the module of the command being run is imported (``smoothcert --help`` lists the commands
from ``COMMANDS`` alone), so that start-up does not pay for torch where it is not needed.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import SmoothCertError

#: command -> its one-line help (the same text as the module's ``add_parser``)
COMMANDS = {
    "radius": "certified radius for a lower bound P of p_A",
    "certify": "certify a smoothed classifier on a dataset",
    "predict": "smoothed predictions on a dataset",
    "train": "train a base classifier with noise augmentation",
    "analyze": "certified-accuracy tables and plots from certify outputs",
    "select": "choose the noise on validation results, report its test result only",
    "merge": "join the part files of a distributed run into one results file",
    "demo": "the main job: train + certify on digits, print tables, write plots",
    "figures": "recompute the paper's figures (PNG, PDF and their numbers)",
}


def _command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is one), None for none."""
    for word in argv:
        if word in COMMANDS:
            return word
        if not word.startswith("-"):
            return None
    return None


def _sigma_hint(argv: list[str]) -> str | None:
    """The one-line hint for a call in Cohen et al.'s order ``certify DATASET CHECKPOINT SIGMA
    OUTFILE`` (sigma positional there; an option here), None for any other call."""
    command = _command_of(argv)
    if command not in ("certify", "predict"):
        return None
    rest = argv[argv.index(command) + 1 :]
    words = []
    for word in rest:
        if word.startswith("-"):
            break
        words.append(word)
    if len(words) != 4:
        return None
    try:
        float(words[2])
    except ValueError:
        return None
    return (
        f"smoothcert {command}: error: sigma is an option here, not the third positional "
        f"of the reference: smoothcert {command} {words[0]} {words[1]} {words[3]} "
        f"--sigma {words[2]} ..."
    )


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command named there is loaded (the others are
    listed with their help), without, every command."""
    parser = argparse.ArgumentParser(
        prog="smoothcert",
        description="Certified robustness of black-box classifiers by randomized smoothing.",
    )
    parser.add_argument("--version", action="version", version=f"smoothcert {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = None if argv is None else _command_of(argv)
    for name, help_text in COMMANDS.items():
        if argv is not None and name != wanted:
            sub.add_parser(name, help=help_text)  # listed only: not the command being run
            continue
        module = importlib.import_module(f".{name}", __package__)
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    hint = _sigma_hint(argv)
    if hint is not None:
        print(hint, file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except SmoothCertError as exc:
        print(f"smoothcert {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"smoothcert {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
