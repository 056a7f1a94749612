"""On the default model, a lesion's task effect (lesion x condition) is null on a random split.

The claim a lesion contrast makes about a task -- the lesion changes the activity of task A
more than that of task B -- must not appear when A and B are a random split of one
homogeneous prompt pool (the null of scripts/null_calibration.py, reduced to 8 pseudo-task and
8 control prompts per run). The lesion itself (58 units of layer 15 zeroed) does change the
activity downstream in both halves, which the same test checks, so the null result is not a
test that cannot fail.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import llmfmri.lesions as ls
from llmfmri.glm import correct
from llmfmri.recording import record

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "null_calibration.py"


def _script():
    spec = importlib.util.spec_from_file_location("null_calibration", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared(contrast, name, alpha=0.05):
    """Units declared by FDR on two-sided p values of one contrast of a LesionContrast."""
    p = contrast.map(name, output_type="p_value")
    two = p._replace(np.minimum(1.0, 2 * np.minimum(p.values, 1 - p.values)))
    return int((correct(two, "fdr").values <= alpha).sum())


@pytest.mark.integration
def test_lesion_by_task_interaction_is_null_on_a_random_split(default_model, tmp_path):
    calib = _script()
    paradigm = calib.split_paradigm(calib.pool_prompts(), seed=0, per_run_task=8,
                                    per_run_control=8)
    intact = record(default_model, paradigm, out=tmp_path / "intact", progress=False)
    units = {"layers.15.resid_post": sorted(
        np.random.default_rng(0).choice(576, 58, replace=False).tolist())}
    with ls.lesion(default_model, units, strategy="zero"):
        lesioned = record(default_model, paradigm, out=tmp_path / "lesioned", progress=False)
    contrast = ls.lesion_contrast(intact, lesioned)
    assert contrast.conditions == ["control", "pseudo"]
    # the lesion is real: it changes activity in both halves of the pool
    assert _declared(contrast, "pseudo") > 0 and _declared(contrast, "control") > 0
    # but not one half more than the other: no task-specific lesion effect
    assert _declared(contrast, "pseudo - control") == 0
