"""llmfmri.decoding: identification by correspondence, grouped decoders, nearest networks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import llmfmri.networks as nw
from llmfmri.decoding import Decoder, DecodingResult, identify, nearest_networks, \
    network_scores
from llmfmri.exceptions import DataError, NotFittedError
from llmfmri.glm import summarize_prompts
from _testing import CONTRASTS, PLANTED, SyntheticRecording

TASKS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def planted():
    return SyntheticRecording(0, effects=PLANTED, amplitude=1.5)


def with_repeated_prompts(rec, n=2):
    """Let run 2 repeat ``n`` prompts of run 1 (same ids) for each task."""
    ev = rec.events(2).copy()
    for task in TASKS:
        for k in range(n):
            ev.loc[ev["prompt_id"] == f"r2-{task}-{k}", "prompt_id"] = f"r1-{task}-{k}"
    rec._events[2] = ev
    return rec


# ----------------------------------------------------------------- identification
def test_identification_of_planted_tasks(planted):
    res = identify(planted, TASKS, baseline="control", n_permutations=500, random_state=0)
    assert isinstance(res, DecodingResult) and res.method == "identification"
    assert res.accuracy == 1.0 and res.chance == pytest.approx(1 / 3)
    assert res.p_value == pytest.approx(1 / 501)
    assert res.chance_empirical == pytest.approx(1 / 3, abs=0.02)
    assert res.confusion.to_numpy().tolist() == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    assert list(res.cv_scores.index) == planted.runs
    pred = res.predictions
    assert len(pred) == 12 and {"score_a", "score_b", "score_c"} <= set(pred.columns)
    assert res.summary()["accuracy"].iloc[0] == 1.0


def test_identification_networks_never_see_the_held_out_run(planted):
    res = identify(planted, CONTRASTS, n_permutations=10, random_state=0)
    for run, nets in res.networks.items():
        others = [r for r in planted.runs if r != run]
        ref = nw.threshold(nw.task_map(planted, CONTRASTS["b"], runs=others))
        np.testing.assert_array_equal(nets["b"].mask, ref.mask)


def test_identification_on_null_data_is_at_chance():
    accs, ps = [], []
    for seed in range(4):
        rec = SyntheticRecording(10 + seed)
        res = identify(rec, TASKS, baseline="control", fraction=0.05, by="prompt_id",
                       n_permutations=300, random_state=seed)
        accs.append(res.accuracy)
        ps.append(res.p_value)
    assert abs(np.mean(accs) - 1 / 3) < 0.12
    assert sum(p > 0.05 for p in ps) >= 3


def test_identification_errors(planted):
    with pytest.raises(DataError, match="pass baseline='control'"):
        identify(planted, TASKS)
    with pytest.raises(DataError, match="at least 2 tasks"):
        identify(planted, ["a"], baseline="control")
    with pytest.raises(DataError, match="Task 'd' has no block in the data"):
        identify(planted, ["a", "d"], baseline="control")
    with pytest.raises(DataError, match="needs at least 2 runs"):
        identify(planted, TASKS, baseline="control", runs=[1])
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 0"):
        identify(planted, TASKS, baseline="control", n_permutations=-1)


def test_identification_warns_about_repeated_prompts():
    from llmfmri.exceptions import LeakageWarning

    rec = with_repeated_prompts(SyntheticRecording(1, effects=PLANTED, amplitude=1.5))
    with pytest.warns(LeakageWarning, match="is presented in runs 1 and 2") as rec_w:
        identify(rec, TASKS, baseline="control", n_permutations=0)
    assert rec_w[0].filename == __file__  # points at the user's line


def test_network_scores_use_training_statistics():
    net = nw.Network([1, 1, 0, 0], label="x")
    neg = nw.Network([0, 0, 1, 1], label="y", tail="negative")
    X = np.array([[3.0, 3.0, 0.0, 0.0], [0.0, 0.0, -2.0, -2.0]])
    scores = network_scores(X, {"x": net, "y": neg}, np.zeros(4), np.ones(4))
    assert scores.to_numpy().tolist() == [[3.0, 0.0], [0.0, 2.0]]
    empty = network_scores(X, {"e": nw.Network([0, 0, 0, 0])}, np.zeros(4), np.ones(4))
    assert empty["e"].isna().all()


# ------------------------------------------------------------------------ decoders
def test_decoder_on_planted_data(planted):
    dec = Decoder(n_permutations=50, random_state=0).fit(planted, conditions=TASKS)
    res = dec.result_
    assert res.accuracy > 0.9 and res.p_value < 0.05
    assert res.chance == pytest.approx(1 / 3) and res.classes == TASKS
    assert res.score == pytest.approx(dec.cv_scores_.mean())
    assert res.confusion.to_numpy().sum() == len(dec.sample_table_) == 4 * 3 * 4
    out = dec.predict(planted, runs=[1])
    assert len(out) == 7 * 4 and set(out["predicted"]) <= set(TASKS)   # control: never learned
    out = out[out["trial_type"].isin(TASKS)]
    assert (out["predicted"] == out["trial_type"]).mean() > 0.9


@pytest.mark.parametrize("estimator", ["logistic", "svc", "ridge"])
def test_decoder_estimators_and_network_screening(planted, estimator):
    net = nw.threshold(nw.task_map(planted, "a - control", runs=[1, 2]))
    dec = Decoder(estimator, screening=net, n_permutations=0)
    dec.fit(planted, runs=[3, 4], conditions=["a", "control"])
    assert dec.feature_mask_.sum() == net.n_units
    assert dec.result_.accuracy > 0.8 and np.isnan(dec.result_.p_value)


def test_screening_inside_folds_keeps_null_at_chance_where_leaky_screening_does_not():
    """A screening step that sees the held-out prompts makes noise decodable; ours does not.

    Null data: 2,000 units, 48 prompts. SelectKBest(f_classif, k=10) fitted on all prompts
    before cross-validation (the leak) reaches near-perfect accuracy on the same splits;
    the Decoder fits it inside each training fold and stays near chance (0.5).
    """
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    ours, leaky, ps = [], [], []
    for seed in range(3):
        rec = SyntheticRecording(seed, n_runs=3, tasks=("a", "b"), layer_size=500)
        dec = Decoder(screening=10, n_permutations=50, random_state=seed)
        dec.fit(rec, conditions=["a", "b"])
        table, X = summarize_prompts(rec)
        keep = table["trial_type"].isin(["a", "b"]).to_numpy()
        X, y = X[keep], table["trial_type"].to_numpy()[keep]
        np.testing.assert_array_equal(y, dec.sample_table_["trial_type"].to_numpy())
        X_leaky = SelectKBest(f_classif, k=10).fit_transform(X, y)
        leaky.append(cross_val_score(LogisticRegression(max_iter=2000), X_leaky, y,
                                     cv=dec.splits_).mean())
        ours.append(dec.result_.score)
        ps.append(dec.result_.p_value)
    assert min(leaky) >= 0.9
    assert max(ours) < 0.75 and abs(np.mean(ours) - 0.5) < 0.15
    assert sum(p > 0.05 for p in ps) >= 2


@pytest.mark.parametrize("cv,by", [("run", "prompt_id"), (3, "prompt_id"), ("run", "block")])
def test_no_prompt_is_on_both_sides_of_a_split(cv, by):
    rec = with_repeated_prompts(SyntheticRecording(2, effects=PLANTED, amplitude=1.5))
    dec = Decoder(cv=cv, by=by, n_permutations=0).fit(rec, conditions=TASKS)
    table = dec.sample_table_
    n_train = 0
    for train, test in dec.splits_:
        prompts = []
        for idx in (train, test):
            ids = set()
            for _, row in table.iloc[idx].iterrows():
                ev = rec.events(row["run"])
                ids |= set(ev.loc[ev[by] == row[by], "prompt_id"])
            prompts.append(ids)
        assert not prompts[0] & prompts[1]
        assert len(test) > 0
        n_train += len(train)
    if cv == "run":    # the repeated prompts were left out of the folds that test the other run
        assert n_train < len(table) * (len(rec.runs) - 1)


def test_decoder_on_null_data_is_at_chance():
    rec = SyntheticRecording(5, tasks=("a", "b"))
    res = Decoder(n_permutations=100, random_state=0).fit(rec, conditions=["a", "b"]).result_
    assert abs(res.score - 0.5) < 0.2 and res.p_value > 0.05
    assert res.chance_empirical == pytest.approx(0.5, abs=0.1)


def test_decoder_errors(planted):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Decoder().predict(planted)
    with pytest.raises(ValueError, match="Allowed values for estimator .* Did you mean 'svc'"):
        Decoder("svm", n_permutations=0).fit(planted)
    with pytest.raises(ValueError, match="Allowed values for scoring .* Did you mean "
                                         "'accuracy'"):
        Decoder(scoring="acuracy").fit(planted)
    with pytest.raises(ValueError, match="Allowed values for cv .* Did you mean 'run'"):
        Decoder(cv="runs", n_permutations=0).fit(planted)
    with pytest.raises(DataError, match="screening=500 asks for more units than the 128"):
        Decoder(screening=500, n_permutations=0).fit(planted)
    with pytest.raises(DataError, match="conditions names 'd', which no sample has"):
        Decoder(n_permutations=0).fit(planted, conditions=["a", "d"])
    with pytest.raises(DataError, match="at least 2 conditions"):
        Decoder(n_permutations=0).fit(planted, conditions=["a"])
    with pytest.raises(DataError, match="cv='run' needs at least 2 runs"):
        Decoder(n_permutations=0).fit(planted, runs=[1])
    with pytest.raises(DataError, match="screening mask has shape"):
        Decoder(screening=np.ones(3, bool), n_permutations=0).fit(planted)
    with pytest.raises(TypeError, match="screening must be None, an int k"):
        Decoder(screening="top", n_permutations=0).fit(planted)
    shared = SyntheticRecording(0, n_runs=2, effects=PLANTED, shared_prompts=True)
    with pytest.raises(DataError, match="runs that repeat prompts cannot be decoded across "
                                        "runs"):
        Decoder(n_permutations=0).fit(shared)


def test_decoder_is_a_scikit_learn_estimator():
    from sklearn.base import clone

    dec = Decoder("svc", screening=5, random_state=1)
    again = clone(dec)
    assert again.get_params() == dec.get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'screen'.*Did you mean 'screening'"):
        dec.set_params(screen=3)


# ------------------------------------------------------------------ nearest networks
def test_nearest_networks_ranks_the_overlapping_network_first(planted):
    maps = nw.task_maps(planted, CONTRASTS, runs=[1, 2])
    nets = {t: nw.threshold(m, label=t) for t, m in maps.items() if t in ("b", "c")}
    held_out = nw.task_map(planted, "a - control", runs=[3, 4])   # a defined no network here
    table = nearest_networks(held_out, nets)
    assert table["network"].tolist() == ["b", "c"]
    assert table.loc[0, "mean_in_network"] > table.loc[1, "mean_in_network"]
    assert set(table.columns) == {"network", "n_units", "correlation", "mean_in_network",
                                  "mean_outside"}
    with pytest.raises(DataError, match="is over 128 units, but the task map has 3"):
        nearest_networks(np.zeros(3), nets)
    plain = nearest_networks(held_out.z, [nw.Network(nets["b"].mask, label="bare")])
    assert np.isnan(plain.loc[0, "correlation"])


def test_results_are_tidy(planted):
    res = identify(planted, TASKS, baseline="control", n_permutations=20, random_state=0)
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame is not res.predictions
    assert {"fold", "run", "block", "true", "predicted", "correct"} <= set(frame.columns)


# -------------------------------------------------------------------- every raise
def test_every_error_teaches(planted):
    from sklearn.model_selection import KFold

    arrays = [planted.frames(1), planted.frames(2)]
    events = [planted.events(1), planted.events(2)]
    no_type = [e.drop(columns="trial_type") for e in events]
    other = nw.Network(np.ones(8, bool), nw.Network([1] * 8).units)
    from llmfmri.units import UnitSpace

    small = nw.Network(np.ones(128, bool), UnitSpace({"layers.0.resid_post": 128}))
    cases = [
        (DataError, r"runs names run 9, but the recording has runs \[1, 2, 3, 4\]",
         lambda: identify(planted, TASKS, baseline="control", runs=[1, 9])),
        (DataError, "events lists 1 tables for 4 runs",
         lambda: identify(planted, TASKS, baseline="control", events=events[:1])),
        (DataError, "runs lists 1 labels for 2 runs of data",
         lambda: identify(arrays, TASKS, baseline="control", events=events, runs=[1])),
        (DataError, "Array data need events", lambda: identify(arrays, TASKS,
                                                               baseline="control")),
        (DataError, "events lists 1 tables for 2 runs of data",
         lambda: identify(arrays, TASKS, baseline="control", events=events[:1])),
        (DataError, "The events have no 'trial_type'",
         lambda: identify(arrays, TASKS, baseline="control", events=no_type)),
        (ValueError, "Allowed values for tail",
         lambda: identify(planted, TASKS, baseline="control", tail="up")),
        (TypeError, "estimator must be one of .* or a scikit-learn classifier",
         lambda: Decoder(estimator=3, n_permutations=0).fit(planted)),
        (ValueError, r"screening must be a number in \(0, 1\)",
         lambda: Decoder(screening=1.5, n_permutations=0).fit(planted)),
        (DataError, "screening is a Network over different units",
         lambda: Decoder(screening=small, n_permutations=0).fit(planted)),
        (DataError, "screening selects no unit",
         lambda: Decoder(screening=np.zeros(128, bool), n_permutations=0).fit(planted)),
        (DataError, "cv=200 folds, but there are only 112 independent groups",
         lambda: Decoder(cv=200, n_permutations=0).fit(planted)),
        (ValueError, "cv must be an integer >= 2", lambda: Decoder(cv=1, n_permutations=0)
         .fit(planted)),
        (ValueError, "cv must be 'run', an int or a scikit-learn splitter",
         lambda: Decoder(cv=2.5, n_permutations=0).fit(planted)),
        (ValueError, "Allowed values for statistic .* Did you mean 'mean'",
         lambda: Decoder(statistic="men", n_permutations=0).fit(planted)),
        (ValueError, "n_permutations must be an integer >= 0",
         lambda: Decoder(n_permutations=-5).fit(planted)),
        (DataError, "The events have no 'trial_type'; the decoder needs",
         lambda: Decoder(n_permutations=0).fit(arrays, no_type)),
        (DataError, r"task must hold one value per unit, but has shape \(2, 2\)",
         lambda: nearest_networks(np.zeros((2, 2)), [other])),
        (TypeError, "Every network must be a Network, but 'x' is list",
         lambda: nearest_networks(np.zeros(8), {"x": [1, 0]})),
    ]
    for error, match, call in cases:
        with pytest.raises(error, match=match):
            call()
    # a splitter object gets prompt-safe groups
    dec = Decoder(cv=KFold(3), n_permutations=0).fit(planted, conditions=TASKS)
    assert len(dec.splits_) == 3


def test_lazy_on_disk_runs(tmp_path, planted):
    """Runs stored as zarr arrays (as a Recording returns them) go through the same paths."""
    import zarr

    class ZarrRecording:
        units, runs = planted.units, planted.runs

        def frames(self, run):
            return zarr.open_array(str(tmp_path / f"run-{run}.zarr"), mode="r")

        def events(self, run):
            return planted.events(run)

    for run in planted.runs:
        z = zarr.open_array(str(tmp_path / f"run-{run}.zarr"), mode="w",
                            shape=planted.frames(run).shape, chunks=(64, 32), dtype="f4")
        z[:] = planted.frames(run)
    rec = ZarrRecording()
    res = identify(rec, TASKS, baseline="control", n_permutations=10, random_state=0)
    assert res.accuracy == 1.0
    dec = Decoder(n_permutations=0).fit(rec, conditions=TASKS)
    assert dec.result_.accuracy > 0.9
    rep = nw.repeatability(rec, CONTRASTS, inference="token")
    assert rep.summary().loc["within task", "dice"] > 0.5
