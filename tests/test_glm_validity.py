"""Validity on null data and power on planted effects.

Units are independent simulations: one (n_frames, n_units) array with
independent columns is many null experiments at once. Rates are checked
against the binomial 99% interval of the nominal level; with these counts
the interval is about +-0.009 around 0.05 for 4,000 units.

Token series are autocorrelated (AR(1) coefficient about 0.5 for
residual-stream units), so the noise here is AR(0.5): OLS t tests are then
invalid (they are shown to be), AR(1) prewhitening restores the level, and
block-label permutations are exact without any noise model.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter

from llmfmri.design import make_design_matrix
from llmfmri.glm import correct, permutation_max_t, run_glm

ALPHA = 0.05


def binomial_interval(p, n, level=0.99):
    lo, hi = stats.binom.interval(level, n, p)
    return lo / n, hi / n


def block_design(n, block, rng=None, n_conditions=2):
    """Block design; with ``rng`` the condition of each block is drawn at random (balanced)."""
    n_blocks = -(-n // block)
    labels = np.arange(n_blocks) % n_conditions
    if rng is not None:
        labels = rng.permutation(labels)
    names = np.array(["a", "b", "c"])[labels]
    ev = pd.DataFrame({"onset": np.arange(n), "duration": 1,
                       "trial_type": np.repeat(names, block)[:n],
                       "block": np.repeat(np.arange(n_blocks), block)[:n]})
    return ev, make_design_matrix(ev, n)


def ar1(rng, n, u, rho=0.5):
    e = rng.standard_normal((n + 50, u))
    return lfilter([1.0], [1.0, -rho], e, axis=0)[50:]  # burn-in: stationary


def test_ols_iid_null_and_ols_on_autocorrelated_noise_is_invalid():
    rng = np.random.default_rng(0)
    n, u = 200, 4000
    _, X = block_design(n, 20)
    p = run_glm(rng.standard_normal((n, u)), X).contrast("a - b").p_value(two_sided=True)
    lo, hi = binomial_interval(ALPHA, u)
    assert lo <= np.mean(p < ALPHA) <= hi
    # the same OLS test on AR(0.5) token-like noise rejects far too often
    p = run_glm(ar1(rng, n, u), X).contrast("a - b").p_value(two_sided=True)
    assert np.mean(p < ALPHA) > 2 * ALPHA


@pytest.mark.parametrize("bins", [None, 100])
def test_ar1_null_uncorrected_at_nominal_level(bins):
    rng = np.random.default_rng(1)
    n, u = 400, 4000
    _, X = block_design(n, 20)
    res = run_glm(ar1(rng, n, u), X, noise_model="ar1", bins=bins)
    assert abs(np.mean(res.rho) - 0.5) < 0.03
    con = res.contrast("a - b")
    lo, hi = binomial_interval(ALPHA, u)
    for p in (con.p_value(two_sided=True), con.p_value()):
        assert lo <= np.mean(p < ALPHA) <= hi
    # p values are uniform under the null (one-sided p of a symmetric test)
    assert stats.kstest(con.p_value(), "uniform").pvalue > 0.001
    # F test with two conditions and a third column
    _, X3 = block_design(n, 20, n_conditions=3)
    F = run_glm(ar1(rng, n, u), X3, noise_model="ar1", bins=bins).contrast(["a - b", "a - c"])
    assert lo <= np.mean(F.p_value() < ALPHA) <= hi


def test_fdr_and_bonferroni_control_family_wise_error_under_the_complete_null():
    """Under the complete null FDR = FWER; BH and Bonferroni keep it at or below alpha."""
    rng = np.random.default_rng(2)
    n, m, sims = 400, 10, 1000
    _, X = block_design(n, 20)
    p = run_glm(ar1(rng, n, m * sims), X, noise_model="ar1").contrast("a - b").p_value(
        two_sided=True).reshape(sims, m)
    any_fdr = np.mean([np.any(correct(row, "fdr") <= ALPHA) for row in p])
    any_bonf = np.mean([np.any(correct(row, "bonferroni") <= ALPHA) for row in p])
    lo, hi = binomial_interval(ALPHA, sims)
    assert lo <= any_fdr <= hi
    assert any_bonf <= hi and any_bonf <= any_fdr


def test_permutation_max_t_controls_family_wise_error():
    """Block labels assigned at random: the max-T test is exact whatever the autocorrelation."""
    rng = np.random.default_rng(3)
    n, m, sims, n_perm = 160, 8, 300, 99
    hits = 0
    for _ in range(sims):
        ev, X = block_design(n, 16, rng=rng)
        res = permutation_max_t(ar1(rng, n, m, 0.6), X, "a - b", groups=ev["block"].to_numpy(),
                                n_permutations=n_perm, random_state=rng)
        hits += bool(np.any(res.p_fwer <= ALPHA))
    lo, hi = binomial_interval(ALPHA, sims)
    assert lo <= hits / sims <= hi


def test_planted_effects_are_recovered_with_the_expected_power():
    rng = np.random.default_rng(4)
    n, u = 200, 4000
    _, X = block_design(n, 20)
    c = np.zeros(X.shape[1])
    c[list(X.columns).index("a")], c[list(X.columns).index("b")] = 1, -1
    se = np.sqrt(c @ np.linalg.inv(X.T.to_numpy() @ X.to_numpy()) @ c)
    dof = n - X.shape[1]
    for delta in (0.2, 0.35):
        Y = rng.standard_normal((n, u)) + delta * X[["a"]].to_numpy()
        con = run_glm(Y, X).contrast("a - b")
        assert abs(np.mean(con.effect_size()) - delta) < 4 * se / np.sqrt(u)
        crit = stats.t.isf(ALPHA / 2, dof)
        power = stats.nct.sf(crit, dof, delta / se) + stats.nct.cdf(-crit, dof, delta / se)
        lo, hi = binomial_interval(power, u)
        assert lo <= np.mean(con.p_value(two_sided=True) < ALPHA) <= hi


def test_planted_effects_under_ar1_noise_power_and_corrections():
    rng = np.random.default_rng(5)
    n, u, k = 400, 2000, 100
    ev, X = block_design(n, 20)
    Y = ar1(rng, n, u)
    delta = np.zeros(u)
    delta[:k] = 0.6
    Y += X[["a"]].to_numpy() * delta
    res = run_glm(Y, X, noise_model="ar1")
    con = res.contrast("a - b")
    # power from the GLS variance at the true rho (0.5)
    Xa = X.to_numpy()
    Xw = Xa[1:] - 0.5 * Xa[:-1]
    Xw = np.vstack([Xa[:1], Xw])
    c = np.array([1.0 if col == "a" else -1.0 if col == "b" else 0.0 for col in X.columns])
    se = np.sqrt(c @ np.linalg.inv(Xw.T @ Xw) @ c)
    crit = stats.t.isf(ALPHA / 2, res.dof)
    power = stats.nct.sf(crit, res.dof, 0.6 / se)
    p2 = con.p_value(two_sided=True)
    lo, hi = binomial_interval(power, k)
    assert lo - 0.05 <= np.mean(p2[:k] < ALPHA) <= hi + 0.05
    q = correct(p2, "fdr")
    found = q <= ALPHA
    assert found[:k].mean() > 0.5
    # one realisation; the plug-in AR(1) tail is ~1.2x nominal at p ~ 0.001 (docs/glm.md)
    false_discoveries = found[k:].sum() / max(found.sum(), 1)
    assert false_discoveries <= 0.2
    bonf = correct(p2, "bonferroni") <= ALPHA
    assert bonf[k:].sum() <= 2 and bonf.sum() <= found.sum()
    perm = permutation_max_t(Y, X, "a - b", groups=ev["block"].to_numpy(), n_permutations=199,
                             random_state=0)
    np.testing.assert_allclose(perm.stat, run_glm(Y, X).contrast("a - b").stat(), rtol=1e-8)
    assert (perm.p_fwer[k:] <= ALPHA).sum() <= 2
    hits = perm.p_fwer <= ALPHA
    assert 1 <= hits[:k].sum() <= found[:k].sum()  # FWER is stricter than FDR


def test_fdr_controls_the_false_discovery_rate_with_planted_effects():
    """Mean false discovery proportion over realisations <= alpha * m0 / m (iid noise, OLS)."""
    rng = np.random.default_rng(6)
    n, m, k, sims = 120, 50, 10, 400
    _, X = block_design(n, 12)
    delta = np.zeros(m * sims)
    delta[np.arange(sims)[:, None] * m + np.arange(k)] = 0.5
    Y = rng.standard_normal((n, m * sims)) + X[["a"]].to_numpy() * delta
    p = run_glm(Y, X).contrast("a - b").p_value(two_sided=True).reshape(sims, m)
    fdp, power = [], []
    for row in p:
        found = correct(row, "fdr") <= ALPHA
        fdp.append(found[k:].sum() / max(found.sum(), 1))
        power.append(found[:k].mean())
    bound = ALPHA * (m - k) / m
    se = np.std(fdp) / np.sqrt(sims)
    assert np.mean(fdp) <= bound + 2.6 * se
    assert np.mean(power) > 0.3


def test_group_sum_null_equals_the_full_design_null():
    """max-T from group sums (boxcar fast path) equals refitting each permuted design (QR)."""
    from llmfmri.glm._correct import DesignBasis, GroupShuffler, max_t_null

    rng = np.random.default_rng(3)
    n, G = 240, 24
    groups = np.repeat(np.arange(G), n // G)
    cond = np.where(groups % 3 == 0, 1.0, 0.0)
    X = np.column_stack([cond, 1.0 - cond, np.linspace(-1, 1, n), np.cos(np.arange(n) / 9)])
    Y = rng.standard_normal((n, 40)) + rng.standard_normal((G, 40))[groups]
    Y[:, :3] += cond[:, None]
    c = np.array([1.0, -1.0, 0.0, 0.0])
    names = ["a", "b", "drift", "cos"]
    fast = GroupShuffler(X, groups, [0, 1], names)
    slow = DesignBasis(lambda perm: X if perm is None else fast.design(perm))
    out = [max_t_null([(Y, b, G, float(n - 4))], c, n_perm=99, two_sided=True,
                      rng=np.random.default_rng(0)) for b in (fast, slow)]
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-9)  # observed t
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-9)  # null maxima


def test_permutation_max_t_reads_an_exact_fit_as_the_strongest_effect():
    """A unit the design fits exactly has t = +inf (not 0) and the smallest FWER p."""
    from llmfmri.exceptions import PerfectFitWarning

    rng = np.random.default_rng(0)
    n, G = 120, 12
    groups = np.repeat(np.arange(G), n // G)
    cond = (groups % 2 == 0).astype(float)
    X = pd.DataFrame({"a": cond, "b": 1.0 - cond})
    Y = rng.standard_normal((n, 5))
    Y[:, 0] = 2.0 * cond + 1.0          # exact fit: no residual at all
    Y[:, 1] = 3.0                        # constant: no effect
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectFitWarning)
        res = permutation_max_t(Y, X, "a - b", groups=groups, n_permutations=99,
                                random_state=0)
    assert res.stat[0] == np.inf and res.stat[1] == 0.0
    # only permutations that give the same partition of the groups (or its mirror) reach inf
    assert res.p_fwer[0] == res.p_fwer.min() and res.p_fwer[0] <= 0.05
    assert np.isfinite(res.stat[2:]).all()
