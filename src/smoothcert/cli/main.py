"""Entry point of the ``smoothcert`` command: one sub-command per module of this package.

Every module listed in ``COMMANDS`` defines ``add_parser(subparsers)`` (which registers its
arguments and sets ``func``) . A :class:`~smoothcert.errors.SmoothCertError` raised anywhere
becomes one line on stderr and exit status 2; argparse errors also exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import SmoothCertError

COMMANDS = ["radius", "certify", "predict", "train", "analyze", "merge", "demo", "figures"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smoothcert",
        description="Certified robustness of black-box classifiers by randomized smoothing.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
