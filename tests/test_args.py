"""Typed lists of whole numbers: one parser for the CLI (``--patch``, ``--tile``, ``--channels``) and
the notebooks (patch and tile size)."""
from __future__ import annotations

import argparse

import pytest

from nbseg.choices import parse_ints
from nbseg.cli.args import int_list


@pytest.mark.parametrize("text, expected", [
    ("64,64", [64, 64]),
    ("16x64x64", [16, 64, 64]),
    (" 16, 64 64 ", [16, 64, 64]),
    ("0", [0]),
    ("", []),
])
def test_parse_ints_reads_common_spellings(text, expected):
    assert parse_ints(text, what="patch size") == expected


def test_parse_ints_says_what_was_given_and_how_to_fix_it():
    with pytest.raises(ValueError, match=r"^patch size '64,6\.4' is not a list of whole numbers \('6\.4' is not one\); "
                                         r"write it like 64,64 \(2D\)"):
        parse_ints("64,6.4", what="patch size", example="64,64 (2D)")


def test_cli_type_shows_the_same_message():
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int_list("channels", "0 or 0,2"))
    assert parser.parse_args(["--channels", "0,2"]).channels == [0, 2]
    with pytest.raises(argparse.ArgumentTypeError, match="channels 'a' is not a list.*write it like 0 or 0,2"):
        int_list("channels", "0 or 0,2")("a")
