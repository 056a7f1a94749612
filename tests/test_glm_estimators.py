"""FirstLevelGLM, SecondLevelGLM, UnitMap, corrections, permutation max-T, statsmodels backend."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from llmfmri.exceptions import NotFittedError
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from llmfmri.glm import (
    ConstantUnitWarning,
    ContrastError,
    DataError,
    FirstLevelGLM,
    PermutationResult,
    SecondLevelGLM,
    UnitMap,
    compute_contrast,
    correct,
    fit_statsmodels,
    permutation_max_t,
    run_glm,
    summarize_prompts,
)
from llmfmri.units import UnitSpace

RTOL = 1e-6


class FakeRecording:
    """In-memory stand-in for llmfmri.recording.Recording (zarr frames, per-frame events)."""

    def __init__(self, n_runs=2, n_prompts=16, tokens=10, effect=1.0, rho=0.5, seed=0,
                 sites=None, conditions=("medical_imaging", "control")):
        import zarr

        rng = np.random.default_rng(seed)
        self.units = UnitSpace(sites or {"layers.0.resid_post": 8, "layers.1.resid_post": 8})
        self.runs = list(range(1, n_runs + 1))
        self.task = "demo"
        self._frames, self._events = {}, {}
        for r in self.runs:
            rows = []
            for p in range(n_prompts):
                block = p // 2
                cond = conditions[block % len(conditions)]
                for t in range(tokens):
                    rows.append(dict(onset=p * tokens + t, duration=1, trial_type=cond,
                                     block=block, run=r, prompt_id=f"r{r}p{p}",
                                     token="t" * int(rng.integers(1, 6)), token_id=t,
                                     position=t, logprob=-rng.random(), frame_kind="generated"))
            ev = pd.DataFrame(rows)
            n = len(ev)
            Y = rng.standard_normal((n, self.units.n_units))
            for t in range(1, n):
                Y[t] += rho * Y[t - 1]
            Y[(ev.trial_type == conditions[0]).to_numpy(), :3] += effect
            z = zarr.create_array(store={}, shape=Y.shape, chunks=(64, 8), dtype="float32")
            z[:] = Y.astype(np.float32)
            self._frames[r], self._events[r] = z, ev

    def frames(self, run):
        return self._frames[run]

    def events(self, run):
        return self._events[run]

    def n_frames(self, run):
        return self._frames[run].shape[0]


@pytest.fixture(scope="module")
def rec():
    return FakeRecording()


# ------------------------------------------------------------------------ FirstLevelGLM
def test_first_level_fixed_effects_equal_manual(rec):
    glm = FirstLevelGLM(noise_model="ar1").fit(rec)
    assert glm.runs_ == [1, 2] and len(glm.results_) == 2
    assert glm.design_matrices_[0].columns.tolist() == ["control", "medical_imaging", "drift_1"]
    z = glm.compute_contrast("medical_imaging - control")
    assert isinstance(z, UnitMap) and z.units is rec.units and z.output_type == "z_score"
    cons = [run_glm(rec.frames(r), glm.design_matrices_[k], noise_model="ar1").contrast(
        "medical_imaging - control") for k, r in enumerate(rec.runs)]
    eff = (cons[0].effect + cons[1].effect) / 2
    var = (cons[0].variance + cons[1].variance) / 4
    np.testing.assert_allclose(glm.compute_contrast("medical_imaging - control",
                                                    output_type="effect_size").values, eff,
                               rtol=RTOL)
    stat = glm.compute_contrast("medical_imaging - control", output_type="stat")
    np.testing.assert_allclose(stat.values, eff / np.sqrt(var), rtol=RTOL)
    assert stat.dof == cons[0].dof + cons[1].dof
    assert (z.values[:3] > 3).all() and (np.abs(z.values[3:]) < 4).all()
    allm = glm.compute_contrast("medical_imaging - control", output_type="all")
    assert set(allm) == {"z_score", "stat", "p_value", "effect_size", "effect_variance"}
    F = glm.compute_contrast(["medical_imaging", "control"], output_type="all")
    assert F["stat"].stat_type == "F" and F["effect_size"].values.shape == (2, 16)
    per_run = glm.compute_contrast([np.array([-1.0, 1, 0]), np.array([-1.0, 1, 0])],
                                   output_type="stat")
    np.testing.assert_allclose(per_run.values, stat.values, rtol=1e-12)
    assert glm.contrast("medical_imaging - control").dof == stat.dof
    assert compute_contrast(glm, "medical_imaging - control").dof == stat.dof


def test_first_level_arrays_design_matrices_and_confounds(rec):
    Ys = [np.asarray(rec.frames(r)) for r in rec.runs]
    evs = [rec.events(r) for r in rec.runs]
    a = FirstLevelGLM(noise_model="ols", confounds=["position"]).fit(Ys, events=evs,
                                                                     units=rec.units)
    assert "position" in a.design_matrices_[0].columns
    b = FirstLevelGLM(noise_model="ols").fit(Ys, design_matrices=a.design_matrices_)
    np.testing.assert_allclose(a.compute_contrast("medical_imaging").values,
                               b.compute_contrast("medical_imaging").values, rtol=1e-12)
    assert b.units_ is None
    extra = [pd.DataFrame({"lp": e["logprob"].to_numpy()}) for e in evs]
    c = FirstLevelGLM(noise_model="ols").fit(Ys, events=evs, confounds=extra)
    assert "lp" in c.design_matrices_[1].columns
    one = FirstLevelGLM(noise_model="ols").fit(rec, runs=2)
    assert one.runs_ == [2]
    params = FirstLevelGLM().get_params()
    assert params["noise_model"] == "ar1" and params["bias_correction"] is True
    assert FirstLevelGLM().set_params(noise_model="ols").noise_model == "ols"
    assert repr(FirstLevelGLM(noise_model="ols")) == "FirstLevelGLM(noise_model='ols')"


def test_first_level_errors(rec):
    glm = FirstLevelGLM()
    with pytest.raises(NotFittedError, match=r"This FirstLevelGLM is not fitted yet"):
        glm.compute_contrast("a")
    with pytest.raises(ValueError, match=r"Invalid parameter 'noise'.*Did you mean"):
        glm.set_params(noise=1)
    with pytest.raises(ValueError, match=r"Allowed values for noise_model"):
        FirstLevelGLM(noise_model="ar(1)").fit(rec)
    with pytest.raises(DataError, match=r"runs names run 3, but the recording has runs \[1, 2\]"):
        FirstLevelGLM().fit(rec, runs=[3])
    Y = np.asarray(rec.frames(1))
    with pytest.raises(DataError, match=r"neither events nor a design matrix"):
        FirstLevelGLM().fit(Y)
    with pytest.raises(DataError, match=r"events lists 2 runs, but the data have 1 runs"):
        FirstLevelGLM().fit(Y, events=[rec.events(1)] * 2)
    with pytest.raises(DataError, match=r"must be a list of 2 items"):
        FirstLevelGLM().fit([Y, Y], events=rec.events(1))
    with pytest.raises(DataError, match=r"run 2 has 5 units and run 1 has 16"):
        FirstLevelGLM().fit([Y, Y[:, :5]], events=[rec.events(1)] * 2)
    with pytest.raises(DataError, match=r"does not match the data's 16 units"):
        FirstLevelGLM().fit(Y, events=rec.events(1), units=UnitSpace({"layers.0.mlp_out": 3}))
    with pytest.raises(DataError, match=r"runs lists 3 labels for 1 runs"):
        FirstLevelGLM().fit(Y, events=rec.events(1), runs=[1, 2, 3])
    with pytest.raises(DataError, match=r"holds no runs"):
        FirstLevelGLM().fit([])
    fitted = FirstLevelGLM(noise_model="ols").fit(rec)
    with pytest.raises(ContrastError, match=r"Run 1: .*'medical'.*Did you mean 'medical_imaging'"):
        fitted.compute_contrast("medical - control")
    with pytest.raises(ValueError, match=r"Allowed values for output_type"):
        fitted.compute_contrast("control", output_type="z")


def test_first_level_constant_units_and_nan_frames():
    r = FakeRecording(n_runs=1, seed=3)
    Y = np.asarray(r.frames(1), dtype=np.float64)
    Y[:, 4] = 2.0
    with pytest.warns(ConstantUnitWarning, match=r"1 of 16 units are constant"):
        z = FirstLevelGLM().fit(Y, events=r.events(1)).compute_contrast(
            "medical_imaging - control")
    assert z.values[4] == 0 and np.isfinite(z.values).all()
    Y[12, 1] = np.nan
    with pytest.raises(DataError, match=r"first columns \[1\]\) at frames \[12\]"):
        FirstLevelGLM().fit(Y, events=r.events(1))


# ----------------------------------------------------------------------------- UnitMap
def test_unit_map_nifti_and_frame(rec, tmp_path):
    glm = FirstLevelGLM().fit(rec)
    maps = glm.compute_contrast("medical_imaging - control", output_type="all")
    img = maps["z_score"].to_nifti()
    assert img.header.get_intent()[0] == "z score"
    assert b"z_score of contrast medical_imaging - control" in img.header["descrip"].tobytes()
    np.testing.assert_allclose(rec.units.from_volume(np.asarray(img.dataobj)),
                               maps["z_score"].values, rtol=1e-6)
    t = maps["stat"].to_nifti()
    assert t.header.get_intent() == ("t test", (maps["stat"].dof,), "")
    assert maps["p_value"].to_nifti().header.get_intent()[0] == "p value"
    assert maps["effect_size"].to_nifti().header.get_intent()[0] == "estimate"
    F = glm.compute_contrast(["medical_imaging", "control"], output_type="all")
    assert F["stat"].to_nifti().header.get_intent()[0] == "f test"
    assert F["effect_size"].to_nifti().shape[-1] == 2
    path = maps["z_score"].to_nifti(tmp_path / "z.nii.gz") and tmp_path / "z.nii.gz"
    back = nib.load(path)
    np.testing.assert_allclose(rec.units.from_volume(back.get_fdata()), maps["z_score"].values,
                               rtol=1e-6)
    with pytest.raises(FileExistsError, match=r"already exists; pass overwrite=True"):
        maps["z_score"].to_nifti(path)
    maps["z_score"].to_nifti(path, overwrite=True)
    with pytest.raises(ValueError, match=r"must end in .nii or .nii.gz"):
        maps["z_score"].to_nifti(tmp_path / "z.img")
    df = maps["z_score"].to_frame()
    assert df.columns.tolist() == ["column", "site", "layer", "component", "index", "value"]
    assert df["layer"].tolist() == [0] * 8 + [1] * 8
    assert F["effect_size"].to_frame().columns[-2:].tolist() == ["value_0", "value_1"]
    assert np.asarray(maps["z_score"]).shape == (16,) and len(maps["z_score"]) == 16
    assert "UnitMap('medical_imaging - control', z_score" in repr(maps["z_score"])


def test_unit_map_errors():
    with pytest.raises(ValueError,
                       match=r"Allowed values for output_type .*Did you mean 'z_score'"):
        UnitMap([1.0], output_type="zscore")
    with pytest.raises(ValueError, match=r"values have 2 units but units .* has 3"):
        UnitMap([1.0, 2.0], UnitSpace({"layers.0.resid_post": 3}))
    with pytest.raises(TypeError, match=r"units must be a UnitSpace"):
        UnitMap([1.0], units="layer 0")
    with pytest.raises(ValueError, match=r"shape \(n_units,\) or \(q, n_units\)"):
        UnitMap(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match=r"has no units .* no volume layout"):
        UnitMap([1.0, 2.0]).to_nifti()
    assert UnitMap([1.0, 2.0]).to_frame().columns.tolist() == ["column", "value"]


# ------------------------------------------------------------------------- corrections
def test_corrections_equal_statsmodels():
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(0, 0.01, 20), rng.uniform(0, 1, 200)])
    np.testing.assert_allclose(correct(p, "fdr"), multipletests(p, method="fdr_bh")[1],
                               rtol=1e-12)
    np.testing.assert_allclose(correct(p, "fdr_bh"), multipletests(p, method="fdr_bh")[1],
                               rtol=1e-12)
    np.testing.assert_allclose(correct(p, "bonferroni"),
                               multipletests(p, method="bonferroni")[1], rtol=1e-12)
    m = UnitMap(p[:4], output_type="p_value", contrast="a")
    q = correct(m, "fdr")
    assert isinstance(q, UnitMap) and q.correction == "fdr" and q.contrast == "a"


@pytest.mark.parametrize("arg,kwargs,match", [
    (np.array([0.1, np.nan]), {}, r"must lie in \[0, 1\], but 1 do not"),
    (np.array([0.1, 1.5]), {}, r"must lie in \[0, 1\]"),
    (np.ones((2, 2)), {}, r"must be 1-D"),
    (np.array([0.1]), {"method": "fdr_by"}, r"Allowed values for method"),
    (np.array([0.1]), {"method": "maxt"}, r"max-T correction needs the data"),
    (UnitMap([0.1]), {}, r"needs a map of p values, but got output_type='z_score'"),
])
def test_correct_errors(arg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        correct(arg, **kwargs)


# ----------------------------------------------------------------- permutation max-T
def test_permutation_max_t_array_level_and_first_level():
    rec = FakeRecording(effect=3.0, rho=0.2, seed=1)
    glm = FirstLevelGLM(noise_model="ols").fit(rec)
    res = glm.permutation_test("medical_imaging - control", by="block", n_permutations=200,
                               random_state=0)
    assert isinstance(res, PermutationResult) and res.null_max.shape == (200,)
    ols_t = glm.compute_contrast("medical_imaging - control", output_type="stat").values
    np.testing.assert_allclose(res.stat, ols_t, rtol=1e-8)
    assert (res.p_fwer[:3] < 0.05).all() and (res.p_fwer[3:] > 0.05).all()
    assert res.p_fwer.min() >= 1 / 201
    thr = res.threshold(0.05)
    assert ((np.abs(res.stat) > thr) == (res.p_fwer <= 0.05)).all()
    assert res.p_map().correction == "maxt" and res.stat_map().output_type == "stat"
    assert "PermutationResult('medical_imaging - control'" in repr(res)
    # same seed, same result; the prompt level too
    again = glm.permutation_test("medical_imaging - control", n_permutations=200, random_state=0)
    np.testing.assert_array_equal(again.null_max, res.null_max)
    by_prompt = glm.permutation_test("medical_imaging - control", by="prompt_id", n_permutations=50,
                                     random_state=1)
    assert by_prompt.n_perm == 50
    # the array-level function with the same groups gives the same null distribution
    arr = permutation_max_t([rec.frames(r) for r in rec.runs], glm.design_matrices_,
                            "medical_imaging - control",
                            groups=[rec.events(r)["block"].to_numpy() for r in rec.runs],
                            n_permutations=200, random_state=0, units=rec.units)
    np.testing.assert_allclose(arr.null_max, res.null_max, rtol=1e-10)
    # one-sided
    one = permutation_max_t(rec.frames(1), glm.design_matrices_[0], "medical_imaging - control",
                            groups=rec.events(1)["block"].to_numpy(), n_permutations=50, two_sided=False,
                            random_state=0)
    assert not one.two_sided and one.threshold(0.01) == np.inf


def test_permutation_with_hrf_rebuilds_designs(rec):
    glm = FirstLevelGLM(noise_model="ols", hrf_model="spm").fit(rec, runs=[1])
    res = glm.permutation_test("medical_imaging - control", n_permutations=30, random_state=0)
    ols_t = glm.compute_contrast("medical_imaging - control", output_type="stat").values
    np.testing.assert_allclose(res.stat, ols_t, rtol=1e-8)
    assert res.p_fwer.shape == (16,)


def test_permutation_errors(rec):
    glm = FirstLevelGLM(noise_model="ols").fit(rec, runs=[1])
    X = glm.design_matrices_[0]
    Y = rec.frames(1)
    blocks = rec.events(1)["block"].to_numpy()
    with pytest.raises(DataError, match=r"vary within group"):
        permutation_max_t(Y, X, "medical_imaging - control", groups=np.arange(len(blocks)) // 15)
    with pytest.raises(DataError, match=r"one label per frame, shape \(160,\)"):
        permutation_max_t(Y, X, "medical_imaging", groups=blocks[:10])
    with pytest.raises(DataError, match=r"at least 2 groups"):
        permutation_max_t(Y, X, "medical_imaging", groups=np.zeros(160))
    with pytest.raises(ValueError, match=r"n_permutations must be a positive integer"):
        permutation_max_t(Y, X, "medical_imaging", groups=blocks, n_permutations=0)
    with pytest.raises(DataError, match=r"must list the same runs"):
        permutation_max_t([Y, Y], X, "medical_imaging", groups=blocks)
    with pytest.raises(DataError, match=r"columns names 'ctrl'.*Did you mean 'control'"):
        permutation_max_t(Y, X, "medical_imaging", groups=blocks, columns=["ctrl"])
    with pytest.raises(DataError, match=r"without a group label .* non-zero values"):
        permutation_max_t(Y, X, "medical_imaging", groups=np.where(blocks == 0, np.nan, blocks))
    with pytest.raises(DataError, match=r"events column 'blok'.*Did you mean 'block'"):
        glm.permutation_test("medical_imaging", by="blok", n_permutations=5)
    with pytest.raises(ValueError, match=r"n_permutations must be a positive integer"):
        glm.permutation_test("medical_imaging", n_permutations=2.5)
    dm_only = FirstLevelGLM(noise_model="ols").fit(np.asarray(Y), design_matrices=X)
    with pytest.raises(DataError, match=r"without events; pass groups="):
        dm_only.permutation_test("medical_imaging", n_permutations=5)
    res = dm_only.permutation_test("medical_imaging - control", n_permutations=5, groups=[blocks],
                                   random_state=0)
    assert res.n_perm == 5
    hrf = FirstLevelGLM(noise_model="ols", hrf_model="spm").fit(rec, runs=[1])
    with pytest.raises(DataError, match=r"prompt_id 'r1p0' holds several trial types"):
        ev = rec.events(1).copy()
        ev.loc[ev.index[:3], "trial_type"] = "control"
        FirstLevelGLM(noise_model="ols", hrf_model="spm").fit(
            np.asarray(Y), events=ev).permutation_test("medical_imaging", by="prompt_id",
                                                       n_permutations=3)
    del hrf


# ------------------------------------------------------------------------ SecondLevelGLM
def test_second_level_one_sample_paired_and_prompts(rec):
    rng = np.random.default_rng(1)
    maps = [UnitMap(rng.standard_normal(16) + np.r_[np.ones(3), np.zeros(13)], rec.units,
                    output_type="effect_size") for _ in range(10)]
    slm = SecondLevelGLM().fit(maps)
    t = slm.compute_contrast(output_type="stat").values
    ref = stats.ttest_1samp(np.vstack([m.values for m in maps]), 0.0)
    np.testing.assert_allclose(t, ref.statistic, rtol=RTOL)
    np.testing.assert_allclose(slm.compute_contrast(output_type="p_value").values,
                               stats.t.sf(ref.statistic, 9), rtol=RTOL)
    assert slm.units_ is rec.units and slm.design_matrix_.columns.tolist() == ["intercept"]
    other = [rng.standard_normal(16) for _ in range(10)]
    paired = SecondLevelGLM().fit(maps, paired_with=other).compute_contrast(output_type="stat")
    ref = stats.ttest_rel(np.vstack([m.values for m in maps]), np.vstack(other))
    np.testing.assert_allclose(paired.values, ref.statistic, rtol=RTOL)
    # prompt level: two-sample t test across prompts
    slm = SecondLevelGLM().fit_prompts(rec)
    table = slm.sample_table_
    assert len(table) == 32 and set(table["trial_type"]) == {"medical_imaging", "control"}
    assert (table["n_frames"] == 10).all()
    t = slm.compute_contrast("medical_imaging - control", output_type="stat").values
    _, vals = summarize_prompts(rec)
    mi = (table["trial_type"] == "medical_imaging").to_numpy()
    ref = stats.ttest_ind(vals[mi], vals[~mi])
    np.testing.assert_allclose(t, ref.statistic, rtol=RTOL)
    assert slm.results_.dof == 30
    cov = SecondLevelGLM().fit_prompts(rec, statistic="last", covariates=["block"])
    assert cov.results_.dof == 29 and "block" in cov.design_matrix_.columns


def test_summarize_prompts_statistics(rec):
    table, mean = summarize_prompts(rec, by="prompt_id")
    Y = np.asarray(rec.frames(1), dtype=np.float64)
    np.testing.assert_allclose(mean[0], Y[:10].mean(0), rtol=1e-12)
    _, last = summarize_prompts(rec, statistic="last")
    np.testing.assert_allclose(last[0], Y[9], rtol=1e-12)
    _, first = summarize_prompts([Y], [rec.events(1)], statistic="first")
    np.testing.assert_allclose(first[1], Y[10], rtol=1e-12)
    _, s = summarize_prompts(Y, rec.events(1), statistic="sum", by="block")
    np.testing.assert_allclose(s[0], Y[:20].sum(0), rtol=1e-12)
    assert table.columns.tolist()[:3] == ["run", "prompt_id", "n_frames"]


def test_second_level_errors(rec):
    with pytest.raises(DataError, match=r"at least 2 samples"):
        SecondLevelGLM().fit([np.ones(3)])
    with pytest.raises(DataError, match=r"same number of units, got \[2, 3\]"):
        SecondLevelGLM().fit([np.ones(3), np.ones(2)])
    with pytest.raises(DataError, match=r"array of shape \(n_samples, n_units\)"):
        SecondLevelGLM().fit(np.ones(3))
    with pytest.raises(DataError, match=r"paired_with must match"):
        SecondLevelGLM().fit(np.ones((3, 2)), paired_with=np.ones((2, 2)))
    with pytest.raises(DataError, match=r"2-D map"):
        SecondLevelGLM().fit([UnitMap(np.ones((2, 3)))] * 2)
    a = UnitMap(np.ones(3), UnitSpace({"layers.0.resid_post": 3}))
    b = UnitMap(np.ones(3), UnitSpace({"layers.1.resid_post": 3}))
    with pytest.raises(DataError, match=r"different units"):
        SecondLevelGLM().fit([a, b])
    with pytest.raises(DataError, match=r"units has 3 units but the maps have 2"):
        SecondLevelGLM().fit(np.ones((3, 2)), units=UnitSpace({"layers.0.resid_post": 3}))
    with pytest.raises(NotFittedError, match=r"This SecondLevelGLM is not fitted yet"):
        SecondLevelGLM().compute_contrast()
    with pytest.raises(DataError, match=r"no 'blok' column.*Did you mean 'block'"):
        summarize_prompts(rec, by="blok")
    with pytest.raises(DataError, match=r"needs per-frame events for each of the 1 runs"):
        summarize_prompts(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"Allowed values for statistic"):
        summarize_prompts(rec, statistic="median")
    with pytest.raises(DataError, match=r"no 'cond' column"):
        SecondLevelGLM().fit_prompts(rec, condition="cond")
    with pytest.raises(DataError, match=r"covariate 'n_frame' .*Did you mean 'n_frames'"):
        SecondLevelGLM().fit_prompts(rec, covariates=["n_frame"])


# --------------------------------------------------------------------- statsmodels backend
def test_statsmodels_backend_models_and_contrasts(rec):
    glm = FirstLevelGLM(noise_model="ar1", first_frame="drop").fit(rec, runs=[1])
    X = glm.design_matrices_[0]
    Y = np.asarray(rec.frames(1), dtype=np.float64)
    units = rec.units.select(layers=0)
    c = "medical_imaging - control"
    ols = fit_statsmodels(Y, X, units=units)
    assert ols.params.shape == (8, 3) and ols.params.index.tolist() == units.tolist()
    fast = run_glm(Y, X).contrast(c)
    np.testing.assert_allclose(ols.contrast(c).stat(), fast.stat()[units], rtol=RTOL)
    np.testing.assert_allclose(ols.contrast(c).p_value(two_sided=True),
                               [r.t_test([-1, 1, 0]).pvalue for r in ols.results], rtol=RTOL)
    F = ols.contrast(["medical_imaging", "control"])
    np.testing.assert_allclose(F.stat(), [r.f_test(np.eye(3)[:2]).fvalue for r in ols.results],
                               rtol=RTOL)
    np.testing.assert_allclose(F.p_value(), [r.f_test(np.eye(3)[:2]).pvalue for r in ols.results],
                               rtol=RTOL)
    # GLSAR with the fast path's coefficients = the fast path with first_frame="drop"
    res = glm.results_[0]
    gl = glm.fit_statsmodels(units=units, model="glsar", rho=res.rho[units])[0]
    np.testing.assert_allclose(gl.contrast(c).stat(), res.contrast(c).stat()[units], rtol=RTOL)
    it = fit_statsmodels(Y, X, units=[0], model="glsar", maxiter=3)
    assert it.results[0].model.rho.shape == (1,)
    # HAC (Newey-West) covariance: normal reference, equals statsmodels' t_test
    hac = fit_statsmodels(Y, X, units=units, cov_type="HAC", cov_kwds={"maxlags": 4})
    tt = [r.t_test([-1, 1, 0]) for r in hac.results]
    np.testing.assert_allclose(hac.contrast(c).stat(), [t.tvalue[0, 0] for t in tt], rtol=RTOL)
    np.testing.assert_allclose(hac.contrast(c).p_value(two_sided=True),
                               [t.pvalue for t in tt], rtol=RTOL)
    assert np.isinf(hac.contrast(c).dof)
    # GLM family and robust RLM
    counts = np.random.default_rng(0).poisson(3.0, Y.shape)
    pois = fit_statsmodels(counts, X, units=[0, 1], model="glm", family="poisson")
    ref = sm.GLM(counts[:, 0], X.to_numpy(), family=sm.families.Poisson()).fit()
    np.testing.assert_allclose(pois.params.iloc[0].to_numpy(), ref.params, rtol=RTOL)
    np.testing.assert_allclose(pois.contrast(c).stat()[0], ref.t_test([-1, 1, 0]).tvalue[0, 0],
                               rtol=RTOL)
    np.testing.assert_allclose(pois.contrast(c).p_value(two_sided=True)[0],
                               ref.t_test([-1, 1, 0]).pvalue, rtol=RTOL)
    pf = pois.contrast(["medical_imaging", "control"])
    np.testing.assert_allclose(pf.p_value()[0], ref.f_test(np.eye(3)[:2]).pvalue, rtol=RTOL)
    rlm = fit_statsmodels(Y, X, units=[2], model="rlm")
    ref = sm.RLM(Y[:, 2], X.to_numpy()).fit()
    np.testing.assert_allclose(rlm.contrast(c).stat()[0], ref.t_test([-1, 1, 0]).tvalue[0, 0],
                               rtol=RTOL)
    wls = fit_statsmodels(Y, X, units=[2], model="wls", weights=np.linspace(1, 2, len(Y)))
    assert wls.model == "wls" and len(wls) == 1 and wls[0] is wls.results[0]
    assert wls.result(2) is wls.results[0]
    frame = ols.summary_frame(c)
    assert frame.columns.tolist() == ["column", "effect", "variance", "t", "p", "z"]
    assert "StatsmodelsGLM(model='ols', n_units=8)" == repr(ols)
    np.testing.assert_allclose(compute_contrast(ols, c).stat(), ols.contrast(c).stat())
    # lazy (zarr) input reads the covering columns
    lazy = fit_statsmodels(rec.frames(1), X, units=[3, 5])
    np.testing.assert_allclose(lazy.params.to_numpy(), ols.params.loc[[3, 5]].to_numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(model="gls"), ValueError, r"Allowed values for model .*Did you mean 'glsar'"),
    (dict(model="glm", family="poison"), ValueError, r"Did you mean 'poisson'"),
    (dict(rho=0.3), ValueError, r"rho is only used with model='glsar'"),
    (dict(model="rlm", cov_type="HC0"), ValueError, r"cov_type is not used"),
    (dict(model="wls"), ValueError, r"needs weights"),
    (dict(units=[]), DataError, r"units is empty"),
    (dict(units=[99]), DataError, r"units must be columns in \[0, 16\)"),
])
def test_statsmodels_backend_errors(rec, kwargs, err, match):
    Y = np.asarray(rec.frames(1), dtype=np.float64)
    X = FirstLevelGLM(noise_model="ols").fit(Y, events=rec.events(1)).design_matrices_[0]
    with pytest.raises(err, match=match):
        fit_statsmodels(Y, X, **kwargs)


def test_statsmodels_backend_data_errors(rec):
    Y = np.asarray(rec.frames(1), dtype=np.float64)
    X = FirstLevelGLM(noise_model="ols").fit(Y, events=rec.events(1)).design_matrices_[0]
    with pytest.raises(DataError, match=r"X has shape \(160, 3\) and Y has shape \(159, 16\)"):
        fit_statsmodels(Y[1:], X)
    Y[3, 2] = np.inf
    with pytest.raises(DataError, match=r"NaN or infinite values in units \[2\]"):
        fit_statsmodels(Y, X)
    with pytest.raises(KeyError, match=r"Unit 9 was not fitted"):
        fit_statsmodels(np.nan_to_num(Y, posinf=0), X, units=[0]).result(9)


# ----------------------------------------------------------------------------- layering
def test_glm_and_design_import_neither_torch_nor_matplotlib():
    code = ("import sys, llmfmri.glm, llmfmri.design, llmfmri.io, llmfmri.commands.glm; "
            "bad = [m for m in ('torch', 'matplotlib', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_n_perm_is_the_old_name_of_n_permutations(rec):
    glm = FirstLevelGLM(noise_model="ols").fit(rec)
    with pytest.warns(FutureWarning, match="n_perm is renamed n_permutations"):
        old = glm.permutation_test("medical_imaging - control", n_perm=20, random_state=0)
    new = glm.permutation_test("medical_imaging - control", n_permutations=20, random_state=0)
    np.testing.assert_array_equal(old.p_fwer, new.p_fwer)
    with pytest.raises(TypeError, match="Pass n_permutations only"):
        glm.permutation_test("medical_imaging - control", n_perm=20, n_permutations=30)


def test_second_level_permutation_sign_flips_and_regressor_permutations():
    rng = np.random.default_rng(4)
    Y = rng.standard_normal((6, 40))
    Y[:, 0] += 4.0
    slm = SecondLevelGLM().fit(Y)
    res = slm.permutation_test(n_permutations=1000, random_state=0)
    assert res.n_permutations == 2 ** 6 - 1          # every sign pattern: exact p
    np.testing.assert_allclose(res.stat, slm.compute_contrast(output_type="stat").values)
    # reference: one-sample t of every sign pattern, by brute force
    import itertools

    def t_of(Z):
        return Z.mean(0) / (Z.std(0, ddof=1) / np.sqrt(len(Z)))

    maxima = np.array([np.abs(t_of(Y * np.array(s)[:, None])).max()
                       for s in itertools.product((1, -1), repeat=6)])
    expected = (maxima >= np.abs(res.stat)[:, None] - 1e-9).sum(1) / 64
    np.testing.assert_allclose(res.p_fwer, expected)
    assert res.p_fwer[0] == res.p_fwer.min() and res.p_fwer[0] <= 0.1
    X = pd.DataFrame({"intercept": 1.0, "dose": np.arange(6.0) - 2.5})
    Y2 = rng.standard_normal((6, 30))
    Y2[:, 2] += 3 * X["dose"].to_numpy()
    reg = SecondLevelGLM().fit(Y2, X).permutation_test("dose", n_permutations=100,
                                                       random_state=0)
    assert reg.n_permutations == 100 and reg.p_fwer[2] <= 0.05
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SecondLevelGLM().permutation_test()
