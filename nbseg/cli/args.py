"""Argument helpers the command modules share: typed whole-number lists, the device choice and
sub-commands whose help ends with an example line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..choices import parse_floats, parse_ints

DEVICES = ("auto", "cpu", "cuda", "mps")


def int_list(what: str, example: str):
    """An argparse ``type=`` reading ``"0,2"`` or ``"32,128,128"`` (also with ``x``) into a list of int.

    Parameters
    ----------
    what : str
        What the option holds, for the message, e.g. ``"tile size"``.
    example : str
        A correct value for the message, e.g. ``"256,256 or 32,128,128"``.
    """
    def parse(text: str) -> list[int]:
        try:
            return parse_ints(text, what=what, example=example)
        except ValueError as err:
            # argparse shows only an ArgumentTypeError's own message; a ValueError becomes "invalid value"
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = what
    return parse


class ExampleFormatter(argparse.HelpFormatter):
    """Wraps the description but keeps the example line as written."""

    def _fill_text(self, text, width, indent):
        if text.startswith("example:"):
            return indent + text
        return super()._fill_text(text, width, indent)


def add_command(subparsers, name: str, func, *, help: str, description: str,  # noqa: A002 - argparse's name
                example: str) -> argparse.ArgumentParser:
    """Add sub-command ``name`` running ``func(args)``; its help ends with ``example: <example>``."""
    parser = subparsers.add_parser(name, help=help, description=description, epilog=f"example: {example}",
                                   formatter_class=ExampleFormatter)
    parser.set_defaults(func=func)
    return parser


def add_project(parser) -> None:
    """The positional PROJECT of the commands that use a trained project."""
    parser.add_argument("project", type=Path, metavar="PROJECT", help="trained project folder (or one model file)")


def float_list(what: str, example: str):
    """An argparse ``type=`` reading ``"2,0.5,0.5"`` into a list of positive float (e.g. pixel sizes)."""
    def parse(text: str) -> list[float]:
        try:
            values = parse_floats(text, what=what, example=example)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        if not values or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{what} {text!r} must be positive numbers, like {example}.")
        return values

    parse.__name__ = what
    return parse


def name_list(text: str) -> list[str]:
    """An argparse ``type=`` reading image names: ``"a,b"``, or a text file with one name a line; an image
    suffix is dropped (``a.tif`` -> ``a``), as images are paired by name."""
    from ..io.names import file_stem, is_image_file

    path = Path(text).expanduser()
    parts = path.read_text(encoding="utf-8").splitlines() if path.is_file() else text.split(",")
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no image: give names like a,b or a file with one a line.")
    return [file_stem(n) if is_image_file(n) else n for n in names]


def print_progress(done: int, total: int, name: str) -> None:
    """The commands' progress callback: ``[done/total] name`` on stderr, so stdout keeps only results."""
    print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)
