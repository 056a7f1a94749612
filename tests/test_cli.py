"""The ``llmfmri`` command on a tiny model saved to disk (offline)."""

import subprocess
import sys

import pandas as pd
import pytest

from llmfmri.cli import main
from llmfmri.models import tiny_model

from _testing import make_paradigm


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


def test_run_command_writes_networks(tiny_dir, paradigm_file, tmp_path, caplog):
    caplog.set_level("INFO", logger="llmfmri")
    code = main(["run", str(paradigm_file), "--model", str(tiny_dir),
                 "--out", str(tmp_path / "job")])
    assert code == 0
    assert "[5/5]" in caplog.text
    analysis = tmp_path / "job" / "analysis"
    table = pd.read_csv(analysis / "networks.tsv", sep="\t")
    assert table["task"].tolist() == ["science"]
    assert (analysis / "task-tiny_contrast-scienceMinusControl_stat-z_statmap.nii.gz").exists()


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
