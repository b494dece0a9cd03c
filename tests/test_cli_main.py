"""The command line as a whole: its list of commands, every command's help, bare `nbseg`, and
`nbseg lr-find` end to end on the bundled sample; `.ci/run` fails where the browser tests cannot run."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from nbseg.cli.main import build_parser, main
from nbseg.data.sample import sample

COMMANDS = {"train", "lr-find", "demo", "predict", "evaluate", "export", "ground-truth", "qc", "notebooks", "suggest",
            "denoise"}
ROOT = Path(__file__).resolve().parents[1]


def subcommands() -> dict:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")  # argparse keeps sub-parsers here
    return action.choices


def test_the_list_of_commands():
    assert set(subcommands()) == COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: nbseg {command}") and "--help" in text
    assert "xample" in text  # each help ends with an example command line


def test_bare_nbseg_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    text = capsys.readouterr().out
    assert text.startswith("usage: nbseg") and all(command in text for command in COMMANDS)


def test_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predcit"])
    assert exit_.value.code == 2
    assert "invalid choice: 'predcit'" in capsys.readouterr().err


@pytest.mark.slow  # an LR sweep
def test_lr_find_end_to_end_on_the_bundled_sample(tmp_path, capsys, one_thread):
    data = sample("nuclei2d")
    project = tmp_path / "project"
    code = main(["lr-find", "--images", str(data["images"]), "--masks", str(data["masks"]), "--project", str(project),
                 "--steps", "6", "--patch", "64,64", "--batch-size", "2", "--device", "cpu", "--precision", "fp32"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    saved = json.loads((project / "lr_finder.json").read_text())
    assert 2 <= len(saved["lrs"]) <= 6 and saved["lrs"] == sorted(saved["lrs"])
    assert min(saved["lrs"]) <= saved["suggestion"] <= max(saved["lrs"])
    assert "proposed learning rate" in printed and "--lr" in printed


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium (else .ci/run installs it)")
def test_ci_fails_instead_of_skipping_the_browser_tests(tmp_path):
    env = dict(os.environ, CI="true", NBSEG_CHROMIUM=str(tmp_path / "no-chromium"))
    done = subprocess.run(["bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "browser tests would skip" in done.stderr
