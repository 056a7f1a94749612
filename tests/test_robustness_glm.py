"""Issue 15, GLM side: exact fits, constant units, too few frames, duplicated events.

Tolerances: exact fits are compared exactly (inf, 0, the largest finite z); the unit with a
tiny real residual is compared with statsmodels to 1e-6 relative, the engine's bar
(test_glm_engine.py); the AR(1) refit path is compared with the compiled kernel to 1e-8
(the two solve the same whitened least squares from different sums, in float64, on a unit
whose residual is large enough for the kernel's sums to be exact to ~1e-12).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from nilearn.glm.first_level import make_first_level_design_matrix

import llmfmri.glm._engine as engine
from llmfmri.design import DesignMatrixError, DesignWarning, make_design_matrix
from llmfmri.exceptions import ConstantUnitWarning, DataError, PerfectFitWarning
from llmfmri.glm import (
    Contrast,
    FirstLevelGLM,
    SecondLevelGLM,
    compute_fixed_effects,
    correct,
    run_glm,
    save_glm_to_bids,
)
from llmfmri.glm._stats import ratio_stat, z_from_f, z_from_t
from llmfmri.io import read_tsv
from llmfmri.units import UnitSpace

BIG = np.finfo(np.float64).max


def block_design(n=40):
    ev = pd.DataFrame({"onset": [0, 10, 20, 30], "duration": 10,
                       "trial_type": ["a", "b", "a", "b"]})
    return make_design_matrix(ev, n_frames=n)


def exact_units(X, rng):
    """Units: exact copy of a, affine copy, a + 1e-9 noise, -2a, the drift alone, noise."""
    a = X["a"].to_numpy()
    return np.column_stack([a, 3 * a + 0.5, a + 1e-9 * rng.standard_normal(len(a)), -2 * a,
                            X["drift_1"].to_numpy() * 4.0 + 1.0, rng.standard_normal(len(a))])


# ------------------------------------------------------------------------- statistics
def test_ratio_stat_and_the_largest_finite_z():
    np.testing.assert_array_equal(ratio_stat([2.0, 0.0, -1.0, 3.0, 0.0], [4.0, 0.0, 0.0, 0.0, 1.0]),
                                  [1.0, 0.0, -np.inf, np.inf, 0.0])
    for dof in (1.0, 5.0, 38.0, 1e4, 1e6):
        z = z_from_t(np.array([-np.inf, -1e300, 1e10, 1e300, BIG, np.inf]), dof)
        assert np.isfinite(z).all() and np.all(np.diff(z[1:]) >= 0)
        assert z[-1] == z[-2] == -z[0] and z[-1] > z[2]
        zf = z_from_f(np.array([1e10, 1e300, np.inf]), 3, dof)
        assert np.isfinite(zf).all() and zf[2] >= zf[1] > zf[0]
    assert z_from_t(np.inf, np.inf) == BIG  # the normal: z = t, the largest double
    assert round(float(z_from_t(np.inf, 38.0)), 2) == 231.94


# ------------------------------------------------------------------------- exact fits
@pytest.mark.parametrize("noise_model", ["ols", "ar1"])
def test_exact_fit_is_the_strongest_effect_not_none(noise_model):
    rng = np.random.default_rng(0)
    X = block_design()
    Y = exact_units(X, rng)
    with pytest.warns(PerfectFitWarning,
                      match=r"4 of 6 units are fitted exactly .*first columns \[0, 1, 3, 4\]"):
        res = run_glm(Y, X, noise_model=noise_model)
    assert res.perfect_fit.tolist() == [True, True, False, True, True, False]
    assert not res.constant_units.any()
    assert (res.dispersion[[0, 1, 3, 4]] == 0).all() and (res.dispersion[[2, 5]] > 0).all()
    if noise_model == "ar1":
        assert (res.rho[[0, 1, 3, 4]] == 0).all()
    con = res.contrast("a - b")
    zmax = z_from_t(np.inf, con.dof)
    stat, z = con.stat(), con.z_score()
    assert stat[0] == stat[1] == np.inf and stat[3] == -np.inf
    assert stat[4] == 0 and z[4] == 0  # the drift alone: no a - b effect, not +-inf
    assert z[0] == z[1] == zmax and z[3] == -zmax and z[0] > z[2] > 30
    np.testing.assert_array_equal(con.p_value()[[0, 1, 3, 4]], [0.0, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(con.p_value(two_sided=True)[[0, 1, 3, 4]], [0, 0, 0, 1])
    assert res.columns == ["a", "b", "drift_1"]  # a + b is the constant
    F = res.contrast(["a - b", "drift_1"])
    assert F.stat()[0] == F.stat()[4] == np.inf and F.p_value()[0] == 0
    assert np.isfinite(F.z_score()).all()
    F0 = res.contrast(["drift_1"], stat_type="F")
    assert F0.stat()[0] == 0 and F0.p_value()[0] == 1.0 and F0.z_score()[0] == 0
    # per coefficient: unit 0 (= a) has b = drift = 0 exactly (t = 0), a = 1 (t = inf)
    assert res.t[:, 0].tolist() == [np.inf, 0.0, 0.0] and res.p[:, 0].tolist() == [0, 1, 1]
    for arr in (con.z_score(), con.p_value(), F.z_score(), res.z, res.p, res.theta):
        assert not np.isnan(arr).any() and np.isfinite(np.asarray(arr)[..., [2, 5]]).all()


def test_tiny_real_residual_is_refitted_and_equals_statsmodels():
    rng = np.random.default_rng(0)
    X = block_design()
    Y = exact_units(X, rng)
    with pytest.warns(PerfectFitWarning):
        con = run_glm(Y, X).contrast("a - b")
    ols = sm.OLS(Y[:, 2], X.to_numpy()).fit()
    t = ols.t_test(np.array([[1.0, -1.0, 0.0]])).tvalue.item()
    np.testing.assert_allclose(con.stat()[2], t, rtol=1e-6)
    np.testing.assert_allclose(con.stat()[5], sm.OLS(Y[:, 5], X.to_numpy()).fit()
                               .t_test(np.array([[1.0, -1.0, 0]])).tvalue.item(), rtol=1e-6)


@pytest.mark.parametrize("first_frame,bins,bias", [("keep", None, True), ("scale", None, False),
                                                   ("drop", 100, False), ("keep", 50, True)])
def test_ar1_refit_path_equals_the_compiled_kernel(monkeypatch, first_frame, bins, bias):
    rng = np.random.default_rng(3)
    X = block_design(80)
    e = np.zeros((80, 5))
    for t in range(1, 80):  # AR(1) noise, rho 0.5
        e[t] = 0.5 * e[t - 1] + rng.standard_normal(5)
    Y = X.to_numpy() @ rng.standard_normal((4, 5)) + e
    kw = dict(noise_model="ar1", first_frame=first_frame, bins=bins, bias_correction=bias)
    rho = np.linspace(-0.4, 0.6, 5)
    kernel = run_glm(Y, X, **kw)
    kernel_given = run_glm(Y, X, noise_model="ar1", first_frame=first_frame, rho=rho)
    monkeypatch.setattr(engine, "_REFIT_RTOL", 10.0)  # every unit goes through the refit
    refit = run_glm(Y, X, **kw)
    refit_given = run_glm(Y, X, noise_model="ar1", first_frame=first_frame, rho=rho)
    for a, b in ((refit, kernel), (refit_given, kernel_given)):
        np.testing.assert_allclose(a.rho, b.rho, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a.theta, b.theta, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(a.dispersion, b.dispersion, rtol=1e-8)


def test_constant_units_and_identical_samples_at_the_second_level():
    maps = [np.array([0.3, 0.0, 1.0 + 0.1 * k, -0.2]) for k in range(6)]
    match = r"3 of 4 units are constant .*identical samples\) is exact: t = \+-inf"
    with pytest.warns(ConstantUnitWarning, match=match):
        maps_out = SecondLevelGLM().fit(maps).compute_contrast("intercept", output_type="all")
    stat, z, p = (maps_out[k].values for k in ("stat", "z_score", "p_value"))
    assert stat[0] == np.inf and stat[3] == -np.inf and stat[1] == 0
    assert z[0] == z_from_t(np.inf, 5.0) and z[1] == 0 and np.isfinite(z).all()
    np.testing.assert_array_equal(p[[0, 1, 3]], [0.0, 0.5, 1.0])
    q = correct(maps_out["p_value"], "fdr")
    assert q.values[0] == 0 and np.isfinite(q.values).all()


def test_fixed_effects_across_runs_with_exact_units():
    rng = np.random.default_rng(1)
    X = block_design()
    runs = []
    for r in range(2):
        Y = exact_units(X, rng)
        Y[:, 5] = Y[:, 0] if r == 0 else Y[:, 5]  # unit 5: exact in run 0 only
        with pytest.warns(PerfectFitWarning):
            runs.append(run_glm(Y, X).contrast("a - b"))
    fe = compute_fixed_effects(runs)
    assert fe.stat()[0] == np.inf and np.isfinite(fe.stat()[5])  # variances add
    with pytest.warns(PerfectFitWarning, match=r"fitted exactly .* in some runs; their "
                                               r"precision there is infinite"), \
            pytest.warns(ConstantUnitWarning, match=r"first columns \[4\]"):
        pw = compute_fixed_effects(runs, precision_weighted=True)
    assert pw.effect_variance()[5] == 0 and pw.effect_size()[5] == runs[0].effect_size()[5]
    assert pw.stat()[5] == np.inf and pw.z_score()[5] == z_from_t(np.inf, pw.dof)
    const = Contrast(np.zeros(6), np.zeros(6), 10)
    with pytest.warns(ConstantUnitWarning, match=r"zero variance and zero effect in some runs"), \
            pytest.warns(PerfectFitWarning):
        mixed = compute_fixed_effects([runs[1], const], precision_weighted=True)
    np.testing.assert_allclose(mixed.effect_size()[2], runs[1].effect_size()[2])


def test_exact_units_survive_every_export(tmp_path):
    rng = np.random.default_rng(2)
    X = block_design()
    Y = exact_units(X, rng)
    ev = pd.DataFrame({"onset": np.arange(40), "duration": 1,
                       "trial_type": np.where(X["a"] == 1, "a", "b")})
    space = UnitSpace({"layers.0.resid_post": 6})
    with pytest.warns(PerfectFitWarning):
        glm = FirstLevelGLM(noise_model="ols").fit(Y, events=ev, units=space)
        written = save_glm_to_bids(glm, ["a - b"], tmp_path)
    table = read_tsv(next(p for p in written if p.name.endswith("_statmap.tsv")))
    assert table["t"].tolist()[:2] == [np.inf, np.inf] and table["t"][3] == -np.inf
    assert np.isfinite(table["z"]).all() and (table["p_fdr"][[0, 1, 3]] == 0).all()
    import nibabel as nib

    zimg = nib.load(next(p for p in written if "_stat-z_" in p.name))
    z = space.from_volume(np.asanyarray(zimg.dataobj))
    assert np.isfinite(z).all() and z[0] == z[1] > z[2]
    timg = nib.load(next(p for p in written if "_stat-t_" in p.name))
    assert space.from_volume(np.asanyarray(timg.dataobj))[0] == np.inf


# --------------------------------------------------------------------- too few frames
@pytest.mark.parametrize("drift", ["polynomial", "cosine"])
def test_one_frame_run_gives_the_frames_for_regressors_error(drift):
    ev = pd.DataFrame({"onset": [0], "duration": [1], "trial_type": ["science"]})
    with pytest.raises(DesignMatrixError, match=r"1 frames for at least 3 regressors \(science"):
        make_design_matrix(ev, n_frames=1, drift_model=drift)
    with pytest.raises(DesignMatrixError, match=r"1 frames for 1 regressors \(science\)"):
        make_design_matrix(ev, n_frames=1, drift_model=None)


def test_ar1_needs_three_frames_and_the_second_level_more_samples_than_columns():
    X = pd.DataFrame({"x": [1.0, 0.0]})
    with pytest.raises(DataError, match=r"noise_model='ar1' needs at least 3 frames .* has 2"):
        run_glm(np.array([[1.0], [2.0]]), X, noise_model="ar1")
    design = pd.DataFrame({"a": [1.0, 0, 1], "b": [0.0, 1, 0], "c": [0.3, 0.1, 0.2]})
    with pytest.raises(DesignMatrixError, match=r"3 frames for 3 regressors .*more samples "
                                                r"than columns"):
        SecondLevelGLM().fit(np.ones((3, 4)) + np.arange(3)[:, None], design)
    with pytest.raises(DataError, match=r"no residual degrees of freedom: 3 frames for 2 "
                                        r"regressors \(one frame dropped"):
        run_glm(np.arange(6.0).reshape(3, 2) ** 2, pd.DataFrame({"x": [0.0, 1, 3],
                                                                 "y": [1.0, 1, 0]}),
                noise_model="ar1", first_frame="drop")


# ------------------------------------------------------------------ duplicated events
def test_duplicated_events_warn_and_sum_as_nilearn():
    ev = pd.DataFrame({"onset": [0, 0, 10], "duration": [5, 5, 5], "trial_type": ["a"] * 3})
    with pytest.warns(DesignWarning, match=r"Duplicated events: 1 events rows .*rows \[0, 1\]; "
                                           r"first: trial_type 'a', onset 0, duration 5"):
        ours = make_design_matrix(ev, n_frames=20, drift_model=None)["a"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = make_first_level_design_matrix(np.arange(20.0), ev, hrf_model=None,
                                             drift_model=None)["a"]
    np.testing.assert_array_equal(ours.to_numpy(), ref.to_numpy())
    with pytest.warns(DesignWarning, match=r"Duplicated events"):  # the HRF path too
        spm = make_design_matrix(ev, n_frames=20, hrf_model="spm", drift_model=None)["a"]
    with pytest.warns(DesignWarning, match=r"Their modulations are summed"):
        mod = make_design_matrix(ev.assign(modulation=[1.0, 2.0, 1.0]), n_frames=20,
                                 drift_model=None)["a"]
    assert mod.max() == 3.0 and spm.max() > 0
    runs = pd.concat([pd.DataFrame({"onset": np.arange(8), "duration": 1, "run": 1,
                                    "trial_type": ["a"] * 4 + ["b"] * 4}),
                      pd.DataFrame({"onset": np.arange(12), "duration": 1, "run": 2,
                                    "trial_type": ["a"] * 6 + ["b"] * 6})])
    with pytest.warns(DesignWarning, match=r"several runs \(\[1, 2\]\): build one design per "
                                           r"run"):
        make_design_matrix(runs, n_frames=12)


def test_overlapping_rows_of_one_condition_warn_and_clean_events_do_not():
    ov = pd.DataFrame({"onset": [0, 2], "duration": [5, 5], "trial_type": ["a", "a"]})
    with pytest.warns(DesignWarning, match=r"trial type 'a' overlap: 3 frames \(first "
                                           r"\[2, 3, 4\]\) .* summed to 2"):
        make_design_matrix(ov, n_frames=20)
    per_frame = pd.DataFrame({"onset": np.arange(20), "duration": 1,
                              "trial_type": ["a"] * 10 + ["b"] * 10})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_design_matrix(per_frame, n_frames=20)
