"""The mixed-model oracle (frames nested in prompts) against the prompt-level fast path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from llmfmri.exceptions import DataError
from llmfmri.glm import FirstLevelGLM, SecondLevelGLM
from llmfmri.glm._mixed import MixedGLM, fit_mixed


def make_runs(seed, n_units, *, balanced=True, prompt_sd=1.0, effect=0.0, n_runs=2,
              n_prompts=24, frames=8):
    """Runs of prompts (conditions a/b alternating) with a random offset per prompt and unit.

    ``y = effect * [a] (unit 0 only) + u_prompt + e`` with ``u ~ N(0, prompt_sd^2)`` and
    ``e ~ N(0, 1)``; ``balanced``: every prompt has ``frames`` frames, otherwise 3 to 13.
    """
    rng = np.random.default_rng(seed)
    runs, events = [], []
    for run in range(1, n_runs + 1):
        m = np.full(n_prompts, frames) if balanced else rng.integers(3, 14, n_prompts)
        pid = np.repeat(np.arange(n_prompts), m)
        cond = np.where(pid % 2 == 0, "a", "b")
        ev = pd.DataFrame({"onset": np.arange(pid.size), "duration": 1, "trial_type": cond,
                           "prompt_id": [f"r{run}-p{p}" for p in pid]})
        Y = rng.normal(0.0, prompt_sd, (n_prompts, n_units))[pid]
        Y += rng.standard_normal((pid.size, n_units))
        Y[cond == "a", 0] += effect
        runs.append(Y)
        events.append(ev)
    return runs, events


@pytest.fixture(scope="module")
def balanced():
    runs, events = make_runs(3, 6, effect=0.8)
    return runs, events, fit_mixed(runs, events)


def test_balanced_prompt_level_equals_mixed_model(balanced):
    """Balanced prompts, REML variance off its boundary: the prompt-level t is the Wald z.

    With m frames in every prompt, the GLS estimate of a condition effect is the mean of the
    prompt means (exact, whatever the variance estimates), and REML's
    sigma_u^2 + sigma^2 / m equals the mean square of the prompt means, which the OLS across
    prompts uses: the two statistics agree up to the optimiser's convergence of the variance
    parameters (about 1e-5 relative here), hence rtol=1e-3. Only the reference distribution
    differs: normal (MixedLM's Wald z) vs Student's t with n_prompts - 2 dof.
    """
    runs, events, fit = balanced
    assert not fit.boundary.any() and fit.converged.all()
    slm = SecondLevelGLM().fit_prompts(runs, events)
    t = slm.compute_contrast("a - b", output_type="stat")
    eff = slm.compute_contrast("a - b", output_type="effect_size")
    con = fit.contrast("a - b")
    np.testing.assert_allclose(con.effect_size(), eff.values, rtol=1e-8)
    np.testing.assert_allclose(con.stat(), t.values, rtol=1e-3)
    assert t.dof == 48 - 2 and con.dof == np.inf
    np.testing.assert_allclose(con.p_value(two_sided=True), 2 * stats.norm.sf(np.abs(con.stat())))
    assert con.stat()[0] > 2.0          # the planted effect


def test_contrast_equals_statsmodels_t_test(balanced):
    _, _, fit = balanced
    for k, res in enumerate(fit.results):
        ref = res.t_test(np.array([[1.0, -1.0]]))
        assert fit.contrast("a - b").stat()[k] == pytest.approx(float(ref.tvalue[0, 0]))
        assert fit.contrast("a - b").p_value(two_sided=True)[k] == pytest.approx(
            float(ref.pvalue))
    frame = fit.to_frame("a - b")
    assert list(frame.columns) == ["column", "effect", "se", "z", "p", "group_variance",
                                   "residual_variance", "converged", "boundary"]
    assert frame["group_variance"].between(0.3, 3).all()
    assert frame["residual_variance"].between(0.7, 1.4).all()
    F = fit.contrast(["a", "b"])
    assert F.stat_type == "F" and F.stat().shape == (6,)
    assert isinstance(fit, MixedGLM) and fit.n_groups == 48 and fit.n_obs == 384


def test_unbalanced_prompts_agree_approximately():
    """Prompts of 3 to 13 frames: the OLS on prompt means weighs every prompt equally, GLS by
    1 / (sigma_u^2 + sigma^2 / m_g): close (|dz| < 0.3 here), not equal."""
    runs, events = make_runs(3, 8, balanced=False, effect=0.8)
    z = fit_mixed(runs, events).contrast("a - b").stat()
    t = SecondLevelGLM().fit_prompts(runs, events).compute_contrast("a - b",
                                                                    output_type="stat").values
    assert np.max(np.abs(z - t)) < 0.3
    assert np.corrcoef(z, t)[0, 1] > 0.95


def test_token_level_ols_is_anti_conservative(balanced):
    """Frames of a prompt share its offset: token-level t overstates the evidence.

    Against the mixed model, the token-level OLS t is about sqrt(1 + (m - 1) rho) = 2.1
    times larger (m = 8 frames, intra-prompt correlation rho = 0.5); on null data it rejects
    far more often than 5% while the prompt-level test stays at the nominal level.
    """
    runs, events, fit = balanced
    tok = FirstLevelGLM(noise_model="ols", drift_model=None).fit(runs, events)
    ratio = np.abs(tok.compute_contrast("a - b", output_type="stat").values
                   / fit.contrast("a - b").stat())
    assert (ratio > 1.6).all()
    runs, events = make_runs(4, 400)
    rates = {}
    for name, m in (
            ("prompt", SecondLevelGLM().fit_prompts(runs, events)),
            ("ols", FirstLevelGLM(noise_model="ols", drift_model=None).fit(runs, events)),
            ("ar1", FirstLevelGLM(noise_model="ar1").fit(runs, events))):
        p = m.compute_contrast("a - b", output_type="p_value").values
        rates[name] = np.mean(2 * np.minimum(p, 1 - p) <= 0.05)
    assert rates["prompt"] <= 0.08
    assert rates["ols"] >= 0.25 and rates["ar1"] >= 0.15


def test_no_prompt_variance_is_flagged_on_the_boundary():
    runs, events = make_runs(5, 4, prompt_sd=0.0, n_runs=1)
    fit = fit_mixed(runs, events, units=[0, 1, 2, 3], reml=False)
    assert fit.boundary.any()
    assert (fit.group_variance < 0.15).all()     # true 0; sampling error ~0.04
    assert "ML" in repr(fit)


def test_units_accepts_anything_with_columns(balanced):
    runs, events, _ = balanced

    class Net:
        columns = np.array([0, 4])

    fit = fit_mixed(runs, events, units=Net())
    assert fit.units.tolist() == [0, 4] and len(fit) == 2


def test_fit_mixed_errors():
    runs, events = make_runs(6, 2, n_runs=1, n_prompts=4)
    with pytest.raises(DataError, match="no 'prompt' column.*Did you mean 'prompt_id'"):
        fit_mixed(runs, events, by="prompt")
    with pytest.raises(DataError, match=r"units must be non-empty columns in \[0, 2\)"):
        fit_mixed(runs, events, units=[5])
    with pytest.raises(DataError, match="needs per-frame events"):
        fit_mixed(runs[0])
    one = events[0].assign(prompt_id="same")
    with pytest.raises(DataError, match="at least 2 groups"):
        fit_mixed(runs, [one])
    bad = [runs[0].copy()]
    bad[0][0, 0] = np.nan
    with pytest.raises(DataError, match="NaN or infinite"):
        fit_mixed(bad, events)


def test_runs_must_share_units():
    runs, events = make_runs(7, 3, n_runs=2, n_prompts=4)
    with pytest.raises(DataError, match="All runs need the same units, but run 2 has 2"):
        fit_mixed([runs[0], runs[1][:, :2]], events)


def test_lazy_arrays_are_read_by_column_range(tmp_path):
    import zarr

    runs, events = make_runs(8, 5, n_runs=1, n_prompts=8)
    z = zarr.open_array(str(tmp_path / "y.zarr"), mode="w", shape=runs[0].shape,
                        chunks=(16, 2), dtype="f8")
    z[:] = runs[0]
    lazy = fit_mixed([z], events, units=[1, 3])
    eager = fit_mixed(runs, events, units=[1, 3])
    np.testing.assert_allclose(lazy.params, eager.params)


def test_other_lazy_arrays_are_read_column_by_column():
    runs, events = make_runs(8, 40, n_runs=1, n_prompts=8)

    class Lazy:   # no orthogonal selection: slices only
        shape = runs[0].shape

        def __getitem__(self, key):
            assert isinstance(key[1], slice)
            return runs[0][key]

    spread = fit_mixed([Lazy()], events, units=[0, 39])
    close = fit_mixed([Lazy()], events, units=[1, 3])
    np.testing.assert_allclose(spread.params, fit_mixed(runs, events, units=[0, 39]).params)
    np.testing.assert_allclose(close.params, fit_mixed(runs, events, units=[1, 3]).params)
