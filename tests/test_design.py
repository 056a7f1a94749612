"""Design matrices: boxcars, HRFs, drift, confounds, rank checks, errors."""

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import make_first_level_design_matrix

from llmfmri.design import (
    DesignMatrixError,
    DesignWarning,
    check_design_matrix,
    collinear_groups,
    make_design_matrix,
)


def per_frame_events(n_prompts=8, tokens=5, conditions=("a", "b"), prompts_per_block=2,
                     seed=0):
    """Per-frame events as a Recording writes them: one row per token frame."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_prompts):
        block = p // prompts_per_block
        cond = conditions[block % len(conditions)]
        for t in range(tokens):
            rows.append(dict(onset=p * tokens + t, duration=1, trial_type=cond, block=block,
                             run=1, prompt_id=f"p{p}", token="x" * int(rng.integers(1, 9)),
                             token_id=t,
                             position=t, logprob=-rng.random(), frame_kind="generated"))
    return pd.DataFrame(rows)


def collapse(events, by):
    """Per-prompt (or per-block) rows: onset = first frame, duration = count."""
    g = events.groupby(by, sort=False)
    return pd.DataFrame({"onset": g["onset"].min(), "duration": g["onset"].count(),
                         "trial_type": g["trial_type"].first()}).reset_index(drop=True)


@pytest.mark.filterwarnings("ignore:Matrix is singular")
def test_boxcar_per_frame_equals_collapsed_and_nilearn():
    ev = per_frame_events()
    n = len(ev)
    a = make_design_matrix(ev, n, drift_model=None)
    b = make_design_matrix(collapse(ev, "prompt_id"), n, drift_model=None)
    c = make_design_matrix(collapse(ev, "block"), n, drift_model=None)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert a.index.name == "frame" and a.index.tolist() == list(range(n))
    assert a.columns.tolist() == ["a", "b"]  # the constant is dropped: a + b = 1
    nl = make_first_level_design_matrix(np.arange(n, dtype=float), collapse(ev, "block"),
                                        hrf_model=None, drift_model=None)
    np.testing.assert_allclose(a[["a", "b"]].to_numpy(), nl[["a", "b"]].to_numpy(), atol=1e-12)


@pytest.mark.parametrize("drift_model,kwargs", [("polynomial", {"drift_order": 3}),
                                                 ("cosine", {"high_pass": 0.05}),
                                                 (None, {})])
def test_drift_matches_nilearn(drift_model, kwargs):
    ev = pd.DataFrame({"onset": [3, 20], "duration": [5, 5], "trial_type": ["a", "a"]})
    n = 60
    ours = make_design_matrix(ev, n, drift_model=drift_model, **kwargs)
    nl = make_first_level_design_matrix(np.arange(n, dtype=float), ev, hrf_model=None,
                                        drift_model=drift_model, **kwargs)
    assert ours.columns.tolist() == nl.columns.tolist()
    np.testing.assert_allclose(ours.to_numpy(), nl.to_numpy(), atol=1e-10)


@pytest.mark.parametrize("hrf_model",
                         ["spm", "glover + derivative", "spm + derivative + dispersion"])
def test_hrf_models_match_nilearn(hrf_model):
    ev = pd.DataFrame({"onset": [5, 30], "duration": [10, 10], "trial_type": ["a", "b"]})
    ours = make_design_matrix(ev, 60, hrf_model=hrf_model)
    nl = make_first_level_design_matrix(np.arange(60.0), ev, hrf_model=hrf_model,
                                        drift_model="polynomial", drift_order=1)
    assert ours.columns.tolist() == nl.columns.tolist()
    np.testing.assert_allclose(ours.to_numpy(), nl.to_numpy(), atol=1e-10)


def test_fir_and_frame_times_and_modulation():
    ev = pd.DataFrame({"onset": [2, 10], "duration": [1, 1], "trial_type": ["a", "a"],
                       "modulation": [1.0, 2.0]})
    fir = make_design_matrix(ev, 20, hrf_model="fir", fir_delays=[0, 1, 2])
    assert [c for c in fir.columns if c.startswith("a")] == ["a_delay_0", "a_delay_1", "a_delay_2"]
    mod = make_design_matrix(ev, frame_times=np.arange(20.0), drift_model=None)
    assert mod["a"].tolist()[:12] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0]
    assert "constant" in mod.columns  # modulated boxcars are not an indicator family
    frac = make_design_matrix(ev, frame_times=np.arange(20) + 0.5, drift_model=None)
    assert frac.index.dtype == float and frac["a"].iloc[2] == 1.0


def test_conditions_subset_keeps_constant_and_baseline_rows():
    ev = per_frame_events(conditions=("a", "b", "rest"), n_prompts=12)
    X = make_design_matrix(ev, len(ev), conditions=["a", "b"])
    assert X.columns.tolist() == ["a", "b", "drift_1", "constant"]
    ev.loc[ev.trial_type == "rest", "trial_type"] = np.nan  # NaN trial type = baseline
    Y = make_design_matrix(ev, len(ev))
    pd.testing.assert_frame_equal(X, Y)


def test_confounds_from_events():
    ev = per_frame_events()
    ev.loc[0, "logprob"] = np.nan
    with pytest.warns(DesignWarning, match="confound 'logprob' is missing .* on 1 of 40 frames"):
        X = make_design_matrix(ev, len(ev), conditions=["a"],
                               confounds=["position", "logprob", "token_length"])
    assert X.columns.tolist() == ["a", "position", "logprob", "token_length", "drift_1",
                                  "constant"]
    np.testing.assert_array_equal(X["position"].to_numpy(), ev["position"].to_numpy())
    np.testing.assert_array_equal(X["token_length"].to_numpy(), ev["token"].str.len().to_numpy())
    assert np.isfinite(X["logprob"]).all()


def test_prompt_intercepts_within_prompt_design():
    ev = per_frame_events()
    # a token-level regressor varies within prompts: per-prompt intercepts are estimable
    ev2 = ev.assign(trial_type=np.nan)  # no condition: a purely token-level model
    X = make_design_matrix(ev2, len(ev2), confounds=["position", "prompt"], drift_model=None,
                           constant="auto")
    prompts = [c for c in X.columns if c.startswith("prompt_")]
    assert len(prompts) == 8 and "constant" not in X.columns
    # with conditions the per-prompt intercepts absorb the condition effect: named error
    with pytest.raises(DesignMatrixError,
                       match=r"rank deficient .*prompt_p5 = a - prompt_p0 - prompt_p1 - prompt_p4"):
        make_design_matrix(ev, len(ev), confounds=["prompt"])


def test_confound_arrays_and_frames():
    ev = per_frame_events()
    n = len(ev)
    extra = pd.DataFrame({"c1": np.linspace(0, 1, n) ** 2})
    X = make_design_matrix(ev, n, confounds=[extra, np.cos(np.arange(n))])
    assert "c1" in X.columns and "confound_1" in X.columns
    X2 = make_design_matrix(None, n_frames=n, confounds=extra)
    assert X2.columns.tolist() == ["c1", "drift_1", "constant"]


def test_constant_option():
    ev = per_frame_events()
    with pytest.raises(DesignMatrixError, match=r"constant = a \+ b"):
        make_design_matrix(ev, len(ev), constant=True)
    X = make_design_matrix(ev, len(ev), constant=False, conditions=["a"])
    assert "constant" not in X.columns


def test_rank_deficiency_names_columns():
    X = pd.DataFrame({"a": [1.0, 0, 1, 0, 1], "b": [0.0, 1, 0, 1, 0], "c": 2.0})
    with pytest.raises(DesignMatrixError, match=r"rank 2 < 3 columns\): c = 2\*a \+ 2\*b"):
        check_design_matrix(X)
    Z = pd.DataFrame({"a": [1.0, 0, 1, 0], "zero": 0.0, "k": 1.0})
    with pytest.raises(DesignMatrixError, match=r"zero = 0 \(zero on every frame\)"):
        check_design_matrix(Z)
    rank, rel = collinear_groups(X.to_numpy(), ["a", "b", "c"])
    assert rank == 2 and rel[0][0] == ["c", "a", "b"]


@pytest.mark.parametrize("bad,match", [
    (pd.DataFrame({"a": [1.0, np.nan, 0, 1]}), r"1 NaN or infinite values in columns \['a'\]"),
    (pd.DataFrame({"a": [1.0]}), "1 frames for 1 regressors"),
    (pd.DataFrame({"a": ["x", "y", "z"]}), "columns must be numeric"),
    (pd.DataFrame([[1.0, 2.0]] * 4, columns=["a", "a"]), "duplicated column names"),
    (np.ones((3, 2, 2)), r"must be 2-D"),
    (pd.DataFrame(index=range(3)), "has no columns"),
])
def test_check_design_matrix_errors(bad, match):
    with pytest.raises(DesignMatrixError, match=match):
        check_design_matrix(bad)


def test_check_design_matrix_rows_and_arrays():
    with pytest.raises(DesignMatrixError, match=r"has 4 rows but the data have 5 frames"):
        check_design_matrix(np.random.default_rng(0).standard_normal((4, 2)), n_frames=5)
    df = check_design_matrix(np.random.default_rng(0).standard_normal(6))
    assert df.columns.tolist() == ["x0"]


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(hrf_model="spmm"), ValueError, r"Did you mean 'spm'\?"),
    (dict(drift_model="poly"), ValueError, r"Allowed values for drift_model"),
    (dict(constant="yes"), ValueError, r"Allowed values for constant"),
    (dict(conditions=["aa"]), DesignMatrixError, r"trial type 'aa'.*Did you mean 'a'\?"),
    (dict(confounds=["positon"]), DesignMatrixError, r"Did you mean 'position'\?"),
    (dict(confounds=["trial_type"]), DesignMatrixError, r"must be a numeric events column"),
    (dict(confounds=[pd.DataFrame({"c": [1.0, 2.0]})]), DesignMatrixError,
     r"one row per frame: expected 40 rows, but got shape \(2, 1\)"),
    (dict(confounds=[pd.DataFrame({"c": [np.nan] * 40})]), DesignMatrixError,
     r"confound column 'c' has 40 NaN"),
    (dict(confounds=[pd.DataFrame({"a": np.arange(40.0)})]), DesignMatrixError,
     r"same names as condition regressors"),
])
def test_make_design_matrix_option_errors(kwargs, err, match):
    ev = per_frame_events()
    with pytest.raises(err, match=match):
        make_design_matrix(ev, len(ev), **kwargs)


def test_events_errors(tmp_path):
    with pytest.raises(DesignMatrixError,
                       match=r"'onset' column .*rename column 'onsets' to 'onset'"):
        make_design_matrix(pd.DataFrame({"onsets": [1]}), 10)
    with pytest.raises(DesignMatrixError, match=r"'duration' must be >= 0 frames"):
        make_design_matrix(pd.DataFrame({"onset": [1], "duration": [-1]}), 10)
    with pytest.raises(DesignMatrixError, match=r"'onset' must be finite numbers"):
        make_design_matrix(pd.DataFrame({"onset": [np.nan], "duration": [1]}), 10)
    with pytest.raises(DesignMatrixError, match=r"duration 0, which gives an empty boxcar"):
        make_design_matrix(pd.DataFrame({"onset": [1], "duration": [0]}), 10)
    with pytest.raises(TypeError, match=r"events must be a pandas DataFrame"):
        make_design_matrix([1, 2], 10)
    with pytest.raises(FileNotFoundError, match=r"events file .* does not exist"):
        make_design_matrix(tmp_path / "nope.tsv", 10)
    with pytest.raises(DesignMatrixError, match=r"events is None"):
        make_design_matrix(None, 10, confounds=["position"])
    with pytest.raises(DesignMatrixError, match=r"no finite value on any frame"):
        make_design_matrix(pd.DataFrame({"onset": [1], "x": [np.nan]}), 10,
                           confounds=["x"], drift_model=None)
    ov = pd.DataFrame({"onset": [1, 1], "duration": [1, 1], "position": [0, 1]})
    with pytest.raises(DesignMatrixError, match=r"overlap at frame 1 with different 'position'"), \
            pytest.warns(DesignWarning, match=r"Duplicated events: 1 events rows"):
        make_design_matrix(ov, 10, confounds=["position"])
    with pytest.raises(DesignMatrixError, match=r"reserved for the drift model"):
        make_design_matrix(pd.DataFrame({"onset": [1], "duration": [2],
                                         "trial_type": ["drift_1"]}), 10)
    path = tmp_path / "ev.tsv"
    per_frame_events().to_csv(path, sep="\t", index=False)
    assert make_design_matrix(path, 40).shape == (40, 3)


@pytest.mark.parametrize("kwargs,match", [
    (dict(), "needs the number of frames"),
    (dict(frame_times=5, n_frames=5), "not both"),
    (dict(n_frames=0), "positive integer"),
    (dict(n_frames=2.5), "positive integer"),
    (dict(frame_times=[0, 2, 1]), "strictly increasing"),
    (dict(frame_times=[0, np.nan]), "finite times"),
])
def test_frame_time_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_design_matrix(None, **kwargs)
