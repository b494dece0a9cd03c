"""`nbseg COMMAND ...` — the command line. Each command group lives in its own module and
registers its sub-commands here; the work itself is done by the core modules."""
from __future__ import annotations

import argparse
import importlib
import re
import sys

# Modules that define register(subparsers); each sub-command sets `func(args) -> int`.
COMMAND_MODULES = ("nbseg.cli.train", "nbseg.cli.predict", "nbseg.cli.suggest", "nbseg.cli.denoise",
                   "nbseg.cli.labels", "nbseg.cli.notebooks")


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
        print(f"nbseg {args.command}: error: {cli_words(str(err), options=vars(args))}", file=sys.stderr)
        return 2


# "pass overwrite=True (CLI: --overwrite)" -> "pass --overwrite": the core's messages name both spellings
_BOTH = re.compile(r"\b(pass|set|use) (?:\w+=[^\s()]+|(?:data|model|train)\.\w+) \(CLI: ([^)]+)\)")


# "(axes='ZYX', CLI: --axes)" -> "(--axes ZYX)"; "(channels=[0], CLI: --channels 0)" -> "(--channels 0)"
_ASIDE = re.compile(r"\((\w+)=([^\s,()]+), CLI: (--[\w-]+)( [^)]+)?\)")


def cli_words(message: str, options=()) -> str:
    """A core error message as the command line says it: option names instead of Python settings.

    ``options``: the command's settings (``vars(args)``); a message that starts with one of them
    (``batch_size 0 must be ...``) starts with the option instead (``--batch-size 0 must be ...``).
    """
    first = message.split(" ", 1)[0]
    if "_" in first and first in options:
        message = "--" + first.replace("_", "-") + message[len(first):]
    message = _BOTH.sub(lambda m: f"{m.group(1)} {m.group(2)}", message)
    message = _ASIDE.sub(lambda m: f"({m.group(3)}{m.group(4) or ' ' + m.group(2).strip(chr(39))})", message)
    return message.replace("(CLI: --", "(--")
