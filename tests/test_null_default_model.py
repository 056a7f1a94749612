"""On the default model, a random split of one homogeneous prompt pool is a null: no network.

The split is a block paradigm with the main job's settings (see scripts/null_calibration.py,
which runs 20 such splits for docs/results/functional_networks.md), reduced to 8 pseudo-task
and 8 control prompts per run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import llmfmri.networks as nw
from llmfmri.recording import record

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "null_calibration.py"


def _script():
    spec = importlib.util.spec_from_file_location("null_calibration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_a_null_split_declares_no_network_with_the_default_inference(default_model, tmp_path):
    calib = _script()
    paradigm = calib.split_paradigm(calib.pool_prompts(), seed=0, per_run_task=8,
                                    per_run_control=8)
    rec = record(default_model, paradigm, out=tmp_path / "null", progress=False)
    default = nw.threshold(nw.task_map(rec, "pseudo - control"), alpha=0.05)
    assert default.inference == "prompt"
    assert default.n_units == 0
