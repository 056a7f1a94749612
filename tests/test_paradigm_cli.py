"""``llmfmri validate``: exit codes, summaries and options."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmfmri.cli import main

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = str(ROOT / "paradigms" / "template.yaml")


def test_valid_file_prints_its_summary(capsys):
    assert main(["validate", TEMPLATE]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"{TEMPLATE}: valid\n")
    assert "  per run       4 blocks, 8 prompts" in out
    assert "≤ 64 (upper bound" in out


def test_quiet_and_library_names(capsys):
    # -q is the global option: accepted after the command too
    assert main(["validate", "-q", "template", "theory_of_mind"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == ["template: valid", "theory_of_mind: valid"]
    assert main(["-q", "validate", "template"]) == 0
    assert capsys.readouterr().out.splitlines() == ["template: valid"]


def test_invalid_and_valid_files_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: x\nconditions: {}\ndesign: {type: event}\n")
    assert main(["validate", TEMPLATE, str(bad), str(tmp_path / "missing.yaml")]) == 2
    out, err = capsys.readouterr()
    assert f"{TEMPLATE}: valid" in out
    assert f"{bad}:3: conditions: expected at least one condition, found an empty mapping." in err
    assert "missing.yaml: paradigm file not found" in err
    assert "Traceback" not in err


def test_seed_changes_the_schedule_not_the_design(tmp_path, capsys):
    out_a, out_b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    assert main(["validate", TEMPLATE, "--schedule", str(out_a)]) == 0
    assert main(["validate", TEMPLATE, "--seed", "3", "--schedule", str(out_b)]) == 0
    out, _ = capsys.readouterr()
    assert f"schedule      written to {out_a}" in out
    assert "seed 3" in out
    a = pd.read_csv(out_a, sep="\t", keep_default_na=False)
    b = pd.read_csv(out_b, sep="\t", keep_default_na=False)
    assert a["trial_type"].tolist() == b["trial_type"].tolist()
    assert a["prompt_id"].tolist() != b["prompt_id"].tolist()
    # an existing schedule is not replaced without --overwrite
    assert main(["validate", TEMPLATE, "--schedule", str(out_a)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["validate", TEMPLATE, "--schedule", str(out_a), "--overwrite"]) == 0


def test_schedule_needs_one_file(capsys):
    assert main(["validate", TEMPLATE, TEMPLATE, "--schedule", "x.tsv"]) == 2
    assert "--schedule needs exactly one FILE" in capsys.readouterr().err
