"""verbose per call, the global level only from set_verbose, warnings at the user's line."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from llmfmri import set_verbose
from llmfmri._utils import find_stack_level, use_log_level, verbose_level, warn
from llmfmri.design import make_design_matrix
from llmfmri.exceptions import ConstantUnitWarning, DesignWarning
from llmfmri.glm import FirstLevelGLM

LOGGER = logging.getLogger("llmfmri")


def fresh(monkeypatch):
    """The llmfmri logger as in a new notebook: no handler, level NOTSET, nothing above it.

    Called inside the test body: pytest attaches its log-capturing handlers only
    when the test itself starts.
    """
    monkeypatch.setattr(LOGGER, "handlers", [])
    monkeypatch.setattr(LOGGER, "level", logging.NOTSET)
    monkeypatch.setattr(LOGGER, "propagate", False)
    return LOGGER


def _data():
    rng = np.random.default_rng(0)
    ev = pd.DataFrame({"onset": np.arange(60), "duration": 1,
                       "trial_type": np.repeat(["a", "b"] * 3, 10)})
    return rng.standard_normal((60, 4)), ev


def test_verbose_on_an_estimator_shows_in_a_fresh_notebook(monkeypatch, capsys):
    fresh_logger = fresh(monkeypatch)
    Y, ev = _data()
    FirstLevelGLM(noise_model="ols").fit(Y, events=ev)
    assert capsys.readouterr().err == ""  # quiet by default
    FirstLevelGLM(noise_model="ols", verbose=1).fit(Y, events=ev)
    err = capsys.readouterr().err
    assert "[llmfmri] FirstLevelGLM: fitting run 1" in err
    assert fresh_logger.level == logging.NOTSET and fresh_logger.handlers == []  # restored


def test_use_log_level_is_for_the_call_only(monkeypatch, capsys):
    fresh(monkeypatch)
    with use_log_level(2) as level:
        assert level == logging.DEBUG
        LOGGER.debug("inside")
    LOGGER.info("outside")
    err = capsys.readouterr().err
    assert "inside" in err and "outside" not in err
    set_verbose(1)  # the global level: only set_verbose changes it
    with use_log_level(0):
        LOGGER.info("global info still shows")  # a call never makes the package quieter
    assert "global info still shows" in capsys.readouterr().err
    assert LOGGER.level == logging.INFO


@pytest.mark.parametrize("value, level", [(0, logging.WARNING), (False, logging.WARNING),
                                          (1, logging.INFO), (True, logging.INFO),
                                          (2, logging.DEBUG), ("debug", logging.DEBUG)])
def test_verbose_levels(value, level):
    assert verbose_level(value) == level


@pytest.mark.parametrize("value", [-1, 1.5, "loud", [1]])
def test_bad_verbose(value):
    with pytest.raises(ValueError, match="verbose must be"):
        verbose_level(value)


def test_warnings_point_at_the_users_line():
    lp = np.linspace(-3, -1, 12)
    lp[0] = np.nan
    ev = pd.DataFrame({"onset": np.arange(12), "duration": 1,
                       "trial_type": np.repeat(["a", "b"], 6), "logprob": lp})
    with pytest.warns(DesignWarning, match="confound 'logprob' is missing") as rec:
        make_design_matrix(ev, n_frames=12, confounds=["logprob"])
    assert rec[0].filename == __file__
    Y, ev = _data()
    Y[:, 2] = 3.0  # a constant unit, warned deep inside run_glm
    with pytest.warns(ConstantUnitWarning) as rec:
        FirstLevelGLM(noise_model="ols").fit(Y, events=ev)
    assert rec[0].filename == __file__


def test_find_stack_level_outside_the_package():
    assert find_stack_level() == 1  # called from here: no llmfmri frame but its own
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        warn("hello", UserWarning)
    assert rec[0].filename == __file__
