"""`nbseg COMMAND ...` — the command line. Each command group lives in its own module and
registers its sub-commands here; the work itself is done by the core modules."""
from __future__ import annotations

import argparse
import importlib
import re
import sys

# Modules that define register(subparsers); each sub-command sets `func(args) -> int`.
COMMAND_MODULES = ("nbseg.cli.train", "nbseg.cli.predict", "nbseg.cli.labels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbseg",
        description="Segment 2D images and 3D stacks of microscopy data with a U-Net. "
                    "Start with `nbseg train --help`.",
    )
    parser.add_argument("--version", action="version", version=f"nbseg {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # a command group not built yet
        module.register(subparsers)
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        # our errors say what was given and how to fix it; a traceback would hide that
        print(f"nbseg {args.command}: error: {cli_words(str(err))}", file=sys.stderr)
        return 2


# "pass overwrite=True (CLI: --overwrite)" -> "pass --overwrite": the core's messages name both spellings
_BOTH = re.compile(r"\b(pass|set|use) (?:\w+=[^\s()]+|(?:data|model|train)\.\w+) \(CLI: ([^)]+)\)")


def cli_words(message: str) -> str:
    """A core error message as the command line says it: option names instead of Python settings."""
    return _BOTH.sub(lambda m: f"{m.group(1)} {m.group(2)}", message)
