"""The ``llmfmri`` command on a tiny model saved to disk (offline)."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from llmfmri.cli import main
from llmfmri.models import tiny_model

from _testing import make_paradigm, make_two_task_paradigm


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    model = tiny_model("llama")
    model.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


@pytest.fixture()
def paradigm_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    make_paradigm(max_new_tokens=4).save(path)
    return path


def test_record_command(tiny_dir, paradigm_file, tmp_path, capsys):
    code = main(["-q", "record", str(paradigm_file), "--model", str(tiny_dir),
                 "--out", str(tmp_path / "rec"), "--sites", "resid_post", "mlp_act"])
    assert code == 0
    out = capsys.readouterr().out
    assert "run 1:" in out and "run 2:" in out


def test_run_command_writes_networks(tiny_dir, tmp_path, caplog, capsys):
    paradigm_file = tmp_path / "two.yaml"
    make_two_task_paradigm().save(paradigm_file)
    caplog.set_level("INFO", logger="llmfmri")
    job = tmp_path / "job"
    argv = ["run", str(paradigm_file), "--model", str(tiny_dir), "--out", str(job),
            "--n-permutations", "50"]
    assert main(argv) == 0
    assert "[6/6] identification" in caplog.text
    analysis = job / "analysis"
    printed = capsys.readouterr().out
    assert f"summary: {analysis / 'summary.json'}" in printed
    assert f"report: {analysis / 'report.html'}" in printed
    html = (analysis / "report.html").read_text()
    assert "llmfmri run" in html and "data:image/png;base64," in html
    table = pd.read_csv(analysis / "networks.tsv", sep="\t")
    assert sorted(table["label"]) == ["arts", "science"]
    assert (table["inference"] == "prompt").all()
    assert (analysis / "task-tinytwo_contrast-scienceMinusControl_stat-z_statmap.nii.gz").exists()
    summary = json.loads((analysis / "summary.json").read_text())
    assert summary["inference"] == "prompt"
    assert summary["command"].startswith("llmfmri run ")
    assert set(summary["tasks"]) == {"science", "arts"}
    for task in summary["tasks"].values():
        assert {"n_units", "inference", "threshold", "token_level_n_units"} <= set(task)
        assert task["threshold"]["correction"] == "fdr"
    assert {"observed", "p_value"} <= set(summary["overlap"])
    assert {"accuracy", "chance", "p_value"} <= set(summary["identification"])
    assert summary["identification"]["chance"] == 0.5
    assert len(summary["repeatability"]) >= 1
    for name in ("overlap.tsv", "repeatability.tsv", "identification.tsv"):
        assert (analysis / name).exists(), name
    # a second run refuses to replace the analysis, before loading the model (exit 2)
    before = sorted(p.name for p in analysis.iterdir())
    assert main(argv) == 2
    assert sorted(p.name for p in analysis.iterdir()) == before
    assert main(argv + ["--overwrite"]) == 0


def test_errors_are_messages_not_tracebacks(tmp_path):
    res = subprocess.run([sys.executable, "-m", "llmfmri.cli", "record", str(tmp_path / "nope.yaml"),
                          "--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "llmfmri record: error:" in res.stderr


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: llmfmri" in capsys.readouterr().out
