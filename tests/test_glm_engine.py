"""run_glm, contrasts and statistics: equality with statsmodels / nilearn, bad input, stability.

Tolerance: 1e-6 relative in float64 (the issue's bar). The fast path solves the
same least-squares problems as statsmodels by a different factorisation (QR with
centred sufficient statistics versus pinv), so agreement is at ~1e-10 or better;
1e-6 leaves room for ill-conditioned random designs without hiding real bugs
(a wrong dof or whitening changes t by >1e-3).
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from scipy.linalg import toeplitz

from llmfmri.design import DesignMatrixError
from llmfmri.glm import (
    ConstantUnitWarning,
    Contrast,
    ContrastError,
    DataError,
    compute_contrast,
    compute_fixed_effects,
    contrast_matrix,
    expression_to_contrast_vector,
    run_glm,
)
from llmfmri.glm._stats import f_logsf, t_logsf, z_from_f, z_from_t

RTOL = 1e-6


def random_design(rng, n, kind="mixed"):
    """Random designs: continuous regressors, boxcars, drift, constant."""
    cols = {}
    if kind in ("mixed", "continuous"):
        cols["a"] = rng.standard_normal(n)
        cols["b"] = rng.standard_normal(n) + 0.5 * cols["a"]
    if kind in ("mixed", "block"):
        period = int(rng.integers(6, 30))
        box = ((np.arange(n) // period) % 2).astype(float)
        cols["a" if "a" not in cols else "task"] = box
        cols["b" if "b" not in cols else "other"] = np.roll(box, period // 2)
    cols["drift"] = np.linspace(-1, 1, n)
    cols["constant"] = np.ones(n)
    return pd.DataFrame(cols)


def ar1_noise(rng, n, u, rho):
    e = rng.standard_normal((n, u))
    y = np.empty_like(e)
    y[0] = e[0] / np.sqrt(1 - np.asarray(rho) ** 2)
    for t in range(1, n):
        y[t] = rho * y[t - 1] + e[t]
    return y


def recording_like(rng, n, u):
    """Token-series-like data: AR(0.5) noise, heavy tails, huge-mean 'massive' units, float32."""
    Y = ar1_noise(rng, n, u, rng.uniform(0.2, 0.8, u))
    Y *= rng.lognormal(0, 1, u)
    Y += rng.standard_t(3, (n, u)) * 0.3
    Y[:, : max(1, u // 10)] += rng.choice([-1, 1], max(1, u // 10)) * 300.0  # massive activations
    return Y.astype(np.float32)


def close(a, b, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------- OLS = statsmodels
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["mixed", "continuous", "block"])
def test_ols_equals_statsmodels_random_designs(seed, kind):
    rng = np.random.default_rng(seed)
    n, u = int(rng.integers(40, 300)), 12
    X = random_design(rng, n, kind)
    Y = rng.standard_normal((n, u)) * rng.lognormal(0, 2, u) + rng.normal(0, 50, u)
    res = run_glm(Y, X)
    cols = X.columns.tolist()
    c = np.zeros(len(cols))
    c[0], c[1] = 1.0, -1.0
    con = res.contrast(c)
    F = res.contrast(np.eye(len(cols))[:2])
    for j in range(u):
        ols = sm.OLS(Y[:, j], X.to_numpy()).fit()
        close(res.theta[:, j], ols.params, atol=1e-9 * np.abs(ols.params).max())
        close(res.t[:, j], ols.tvalues)
        close(res.p[:, j], ols.pvalues)
        close(res.variance[:, j], ols.bse ** 2)
        tt = ols.t_test(c)
        close(con.effect_size()[j], tt.effect[0])
        close(con.effect_variance()[j], tt.sd[0, 0] ** 2)
        close(con.stat()[j], tt.tvalue[0, 0])
        close(con.p_value(two_sided=True)[j], tt.pvalue)
        ft = ols.f_test(np.eye(len(cols))[:2])
        close(F.stat()[j], ft.fvalue)
        close(F.p_value()[j], ft.pvalue)
    assert res.dof == n - len(cols)


def test_ols_recording_like_float32_chunked_equals_statsmodels():
    import zarr

    rng = np.random.default_rng(5)
    n, u = 400, 40
    ev_box = ((np.arange(n) // 25) % 2).astype(float)
    X = pd.DataFrame({"task": ev_box, "position": np.tile(np.arange(20.0), 20),
                      "drift_1": np.linspace(-0.5, 0.5, n), "constant": 1.0})
    Y = recording_like(rng, n, u)
    z = zarr.create_array(store={}, shape=Y.shape, chunks=(64, 16), dtype="float32")
    z[:] = Y
    for data in (Y, z):
        res = run_glm(data, X, chunk_size=None if data is Y else 8)
        con = res.contrast("task")
        for j in range(u):
            ols = sm.OLS(Y[:, j].astype(np.float64), X.to_numpy()).fit()
            close(res.theta[:, j], ols.params)
            tt = ols.t_test([1, 0, 0, 0])
            close(con.stat()[j], tt.tvalue[0, 0])
            close(con.p_value(two_sided=True)[j], tt.pvalue)


# ---------------------------------------------------------------------- AR(1) = GLSAR/nilearn
@pytest.mark.parametrize("seed", [0, 1])
def test_ar1_fixed_rho_equals_glsar_gls_and_nilearn(seed):
    from nilearn.glm.regression import ARModel

    rng = np.random.default_rng(seed)
    n, u = 150, 8
    X = random_design(rng, n, "mixed")
    Y = ar1_noise(rng, n, u, 0.5) + rng.normal(0, 10, u)
    rho = rng.uniform(-0.6, 0.9, u)
    p = X.shape[1]
    c = np.r_[1.0, -1.0, np.zeros(p - 2)]
    Xa = X.to_numpy()
    for first_frame in ("drop", "scale", "keep"):
        res = run_glm(Y, X, noise_model="ar1", rho=rho, first_frame=first_frame)
        con = res.contrast(c)
        F = res.contrast(np.eye(p)[:2])
        for j in range(u):
            if first_frame == "drop":
                ref = sm.GLSAR(Y[:, j], Xa, rho=rho[j]).fit()
            elif first_frame == "scale":
                ref = sm.GLS(Y[:, j], Xa, sigma=toeplitz(rho[j] ** np.arange(n))).fit()
            else:
                nl = ARModel(Xa, rho[j]).fit(Y[:, [j]])
                close(res.theta[:, j], nl.theta[:, 0])
                close(con.stat()[j], np.ravel(nl.Tcontrast(c).t)[0])
                close(res.dispersion[j], nl.dispersion[0])
                continue
            close(res.theta[:, j], ref.params)
            close(res.t[:, j], ref.tvalues)
            tt = ref.t_test(c)
            close(con.stat()[j], tt.tvalue[0, 0])
            close(con.p_value(two_sided=True)[j], tt.pvalue)
            close(F.stat()[j], ref.f_test(np.eye(p)[:2]).fvalue)
            assert res.dof == ref.df_resid


def test_ar1_binned_equals_nilearn_run_glm():
    from nilearn.glm.contrasts import compute_contrast as nl_contrast
    from nilearn.glm.first_level import run_glm as nl_run_glm

    rng = np.random.default_rng(3)
    n, u = 300, 60
    X = random_design(rng, n, "block")
    Y = recording_like(rng, n, u).astype(np.float64)
    labels, results = nl_run_glm(Y, X.to_numpy(), noise_model="ar1", bins=100)
    ours = run_glm(Y, X, noise_model="ar1", bins=100, bias_correction=False)
    np.testing.assert_array_equal(ours.rho, labels.astype(float))
    c = np.r_[1.0, -1.0, np.zeros(X.shape[1] - 2)]
    nl = nl_contrast(labels, results, c, "t")
    con = ours.contrast(c)
    close(con.effect_size(), nl.effect_size())
    close(con.effect_variance(), nl.effect_variance())
    close(con.stat(), nl.stat())
    close(con.p_value(), nl.p_value())
    close(con.z_score(), nl.z_score(), atol=1e-9)
    nlF = nl_contrast(labels, results, np.eye(X.shape[1])[:2], "F")
    close(ours.contrast(np.eye(X.shape[1])[:2]).stat(), nlF.stat())
    # OLS too
    labels, results = nl_run_glm(Y, X.to_numpy(), noise_model="ols")
    close(run_glm(Y, X).contrast(c).stat(), nl_contrast(labels, results, c, "t").stat())


def test_ar1_exact_rho_is_nilearn_yule_walker_of_ols_residuals():
    rng = np.random.default_rng(4)
    n, u = 200, 30
    X = random_design(rng, n, "mixed")
    Y = ar1_noise(rng, n, u, 0.6)
    res = run_glm(Y, X, noise_model="ar1", bias_correction=False)
    E = Y - X.to_numpy() @ np.linalg.lstsq(X.to_numpy(), Y, rcond=None)[0]
    E = E - E.mean(0)
    rho = (E[1:] * E[:-1]).sum(0) / (n - 1) / ((E * E).sum(0) / n)
    close(res.rho, rho, rtol=1e-9)
    # the fit with those coefficients is the fixed-rho fit
    fixed = run_glm(Y, X, noise_model="ar1", rho=rho)
    close(res.theta, fixed.theta, rtol=1e-9)
    # without a constant in the design, residuals are demeaned per unit
    Xn = X.drop(columns="constant")
    res = run_glm(Y + 3.0, Xn, noise_model="ar1", bias_correction=False)
    E = (Y + 3.0) - Xn.to_numpy() @ np.linalg.lstsq(Xn.to_numpy(), Y + 3.0, rcond=None)[0]
    E = E - E.mean(0)
    close(res.rho, (E[1:] * E[:-1]).sum(0) / (n - 1) / ((E * E).sum(0) / n), rtol=1e-9)
    sm_res = sm.OLS(Y[:, 0] + 3.0, Xn.to_numpy()).fit()
    close(run_glm(Y + 3.0, Xn).theta[:, 0], sm_res.params)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_chunking_threads_and_lazy_arrays_do_not_change_results(n_jobs):
    rng = np.random.default_rng(6)
    n, u = 120, 50
    X = random_design(rng, n, "block")
    Y = recording_like(rng, n, u)

    class Lazy:
        """A duck-typed on-disk array: shape, chunks and slicing only."""

        shape = Y.shape
        chunks = (32, 8)

        def __getitem__(self, key):
            return Y[key]

    ref = run_glm(Y, X, noise_model="ar1")
    for data, cs in ((Y, 7), (Lazy(), None), (Lazy(), 13)):
        res = run_glm(data, X, noise_model="ar1", chunk_size=cs, n_jobs=n_jobs)
        close(res.theta, ref.theta, rtol=1e-9)
        close(res.dispersion, ref.dispersion, rtol=1e-9)
        close(res.rho, ref.rho, rtol=1e-9, atol=1e-12)


def _accumulate_reference(Y, r0, r1, c0, c1, q0, shift, Qs, prev):
    X = np.asarray(Y[r0:r1, c0:c1], dtype=np.float64) - shift
    lagged = np.vstack([prev[None], X[:-1]])
    f = np.arange(q0, q0 + (r1 - r0))
    return dict(M=Qs[:, f] @ X, yy=(X * X).sum(0), y1=(X * lagged).sum(0), ysum=X.sum(0),
                prev=X[-1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("K", [0, 1, 2, 5])
def test_compiled_accumulate_equals_numpy(dtype, K):
    """The fused kernel against plain numpy: row tails, odd basis sizes, strips, offsets, carry."""
    from llmfmri.glm._kernels import accumulate

    rng = np.random.default_rng(K)
    n_total, u_total = 41, 1100  # more units than one strip (1,024)
    Y = (rng.standard_normal((n_total, u_total)) * 3 + 50).astype(dtype)
    Qs = rng.standard_normal((K, 60))
    for r0, r1, c0, c1, q0 in [(0, 41, 0, 1100, 0), (3, 10, 5, 1090, 7), (2, 3, 0, 1, 11),
                               (0, 4, 1, 1025, 0), (5, 5, 0, 3, 0)]:
        w = c1 - c0
        shift = rng.standard_normal(w) + 50
        prev = rng.standard_normal(w)
        for ar1, dosum in [(True, True), (False, False), (True, False)]:
            M = np.zeros((K, w))
            yy, y1, ysum, pv = np.zeros(w), np.zeros(w), np.zeros(w), prev.copy()
            accumulate(Y, r0, r1, c0, c1, q0, shift, Qs, M, yy,
                       y1 if ar1 else np.zeros(0), ysum if dosum else np.zeros(0), pv)
            if r1 == r0:  # nothing to add: everything untouched
                assert not M.any() and not yy.any() and np.array_equal(pv, prev)
                continue
            ref = _accumulate_reference(Y, r0, r1, c0, c1, q0, shift, Qs, prev)
            np.testing.assert_allclose(M, ref["M"], rtol=1e-12, atol=1e-11)
            np.testing.assert_allclose(yy, ref["yy"], rtol=1e-12)
            np.testing.assert_allclose(pv, ref["prev"], rtol=1e-14)
            if ar1:
                np.testing.assert_allclose(y1, ref["y1"], rtol=1e-12, atol=1e-11)
            else:
                assert not y1.any()
            if dosum:
                np.testing.assert_allclose(ysum, ref["ysum"], rtol=1e-12, atol=1e-11)


def test_compiled_gram_solve_equals_lapack_and_flags_indefinite_matrices():
    from llmfmri.glm._kernels import _gram_solve

    rng = np.random.default_rng(3)
    p = 5
    A = rng.standard_normal((4, 30, p))
    gcoef = np.einsum("kti,ktj->kij", A, A)
    gcoef[1] *= -0.5
    for r in (-0.9, 0.0, 0.4, 0.95):
        c = 1 - r * r
        G = gcoef[0] + r * gcoef[1] + r * r * gcoef[2] + c * gcoef[3]
        h = rng.standard_normal(p)
        out = np.zeros(p)
        assert _gram_solve(gcoef, r, c, h, np.zeros((p, p)), np.zeros(p), out)
        np.testing.assert_allclose(out, np.linalg.solve(G, h), rtol=1e-10)
    out = np.full(p, 7.0)
    assert not _gram_solve(-gcoef, 0.0, 0.0, h, np.zeros((p, p)), np.zeros(p), out)
    assert (out == 7.0).all()  # left for the caller's LU fallback


def test_ar1_units_the_cholesky_refuses_are_solved_by_lu(monkeypatch):
    """The LU fallback gives the same fit as the compiled Cholesky for the units it takes."""
    from llmfmri.glm import _kernels

    rng = np.random.default_rng(4)
    n, u = 80, 40
    X = random_design(rng, n, "block")
    Y = ar1_noise(rng, n, u, 0.5) + 10.0
    ref = run_glm(Y, X, noise_model="ar1", first_frame="scale")
    real = _kernels.finish_ar1

    def refuse_every_third(*args):
        ok = real(*args)
        theta, rss = args[-4], args[-2]  # theta unit-major (n_units, p)
        ok[::3] = False
        theta[::3] = 0.0
        rss[::3] = 0.0
        return ok

    monkeypatch.setattr(_kernels, "finish_ar1", refuse_every_third)
    res = run_glm(Y, X, noise_model="ar1", first_frame="scale")
    close(res.theta, ref.theta, rtol=1e-9, atol=1e-12)
    close(res.dispersion, ref.dispersion, rtol=1e-9)
    close(res.rho, ref.rho, rtol=1e-12)


def test_any_memory_layout_and_dtype_gives_the_same_fit():
    """Fortran order, strided views and integer data are read through C-contiguous tiles."""
    rng = np.random.default_rng(8)
    n, u = 90, 30
    X = random_design(rng, n, "mixed")
    Y = np.round(recording_like(rng, n, u).astype(np.float64) * 10)
    ref = run_glm(Y, X, noise_model="ar1")
    big = np.zeros((n, 2 * u))
    big[:, ::2] = Y
    for data in (np.asfortranarray(Y), big[:, ::2], Y.astype(np.int64), Y.astype(np.float32)):
        res = run_glm(data, X, noise_model="ar1")
        close(res.theta, ref.theta, rtol=1e-9, atol=1e-12)
        close(res.dispersion, ref.dispersion, rtol=1e-9)


def _record_tiny(tmp_path, model, n_runs=2):
    from llmfmri.paradigm import load_paradigm
    from llmfmri.recording import record

    control = ["The weather today is", "My favourite food is", "In the garden we",
               "On the train I", "Yesterday the shop", "A quiet evening at home"]
    task = ["The atom consists of", "Cells divide by", "Light travels at", "Gravity pulls",
            "Magnets attract", "Water boils at"]
    par = load_paradigm({
        "schema_version": 1, "name": "glmtest",
        "conditions": {"control": {"role": "control", "prompts": control},
                       "science": {"role": "task", "prompts": task}},
        "design": {"type": "block", "sequence": ["control", "science", "control", "science"],
                   "prompts_per_block": 3 if n_runs == 1 else 1},
        "runs": {"n": n_runs},
        "generation": {"max_new_tokens": 8, "do_sample": False, "seed": 3},
        "frames": "generated",
    })
    return record(model, par, sites="resid_post", out=tmp_path / "rec", progress=False)


def _check_recording_against_statsmodels(rec, step):
    from llmfmri.glm import FirstLevelGLM

    glm = FirstLevelGLM(noise_model="ar1", first_frame="drop").fit(rec)
    for run, dm, res in zip(glm.runs_, glm.design_matrices_, glm.results_):
        Y = np.asarray(rec.frames(run)[:], dtype=np.float64)
        X = dm.to_numpy()
        con = res.contrast("science - control")
        c = np.array([1.0 if k == "science" else -1.0 if k == "control" else 0.0
                      for k in dm.columns])
        ols = run_glm(rec.frames(run), dm).contrast("science - control")
        for j in range(0, Y.shape[1], step):
            if np.ptp(Y[:, j]) == 0:
                continue
            ref = sm.OLS(Y[:, j], X).fit().t_test(c)
            close(ols.stat()[j], ref.tvalue[0, 0])
            close(ols.effect_size()[j], ref.effect[0])
            ref = sm.GLSAR(Y[:, j], X, rho=res.rho[j]).fit().t_test(c)
            close(con.stat()[j], ref.tvalue[0, 0])
            close(con.p_value(two_sided=True)[j], ref.pvalue)


def test_real_recording_tiny_model_equals_statsmodels(tiny_models, tmp_path):
    """A real Recording (tiny random model, real recorder) fitted end to end."""
    pytest.importorskip("llmfmri.recording")
    rec = _record_tiny(tmp_path, tiny_models["llama"])
    _check_recording_against_statsmodels(rec, step=3)


@pytest.mark.integration
def test_real_recording_default_model_equals_statsmodels(default_model, tmp_path):
    """A real Recording of the default model (SmolLM2-135M) fitted end to end."""
    rec = _record_tiny(tmp_path, default_model, n_runs=1)
    _check_recording_against_statsmodels(rec, step=97)


# ------------------------------------------------------------------------------ bad input
def test_nan_and_inf_frames_are_named():
    rng = np.random.default_rng(0)
    X = random_design(rng, 50, "block")
    Y = rng.standard_normal((50, 6))
    Y[7, 2] = np.nan
    Y[9, 4] = np.inf
    with pytest.raises(DataError,
                       match=r"in 2 units \(first columns \[2, 4\]\) at frames \[7, 9\]"):
        run_glm(Y, X)
    with pytest.raises(DataError, match=r"NaN or infinite"):
        run_glm(Y, X, noise_model="ar1")


@pytest.mark.parametrize("noise_model", ["ols", "ar1"])
def test_constant_units_warn_and_are_nan_free(noise_model):
    rng = np.random.default_rng(1)
    X = random_design(rng, 80, "block")
    Y = rng.standard_normal((80, 5))
    Y[:, 1] = 7.5
    Y[:, 3] = 0.0
    with pytest.warns(ConstantUnitWarning, match=r"2 of 5 units are constant .*\[1, 3\]"):
        res = run_glm(Y, X, noise_model=noise_model)
    assert res.constant_units.tolist() == [False, True, False, True, False]
    assert not res.perfect_fit.any()
    for arr in (res.theta, res.z, res.p, res.dispersion):
        assert np.isfinite(arr).all()
    # no variance at all: every coefficient orthogonal to the constant is exactly 0 (t = 0);
    # the constant itself is known exactly (7.5: t = +inf; 0: t = 0)
    k = X.columns.get_loc("constant")
    t = np.delete(res.t, k, axis=0)
    assert (t[:, [1, 3]] == 0).all() and np.isfinite(np.delete(res.t, [1, 3], axis=1)).all()
    assert res.t[k, 1] == np.inf and res.t[k, 3] == 0 and res.p[k, 1] == 0
    con = res.contrast("a - b")
    assert con.effect_size()[1] == 0 and con.effect_variance()[1] == 0
    assert con.stat()[1] == 0 and con.z_score()[1] == 0
    assert con.p_value()[1] == 0.5 and con.p_value(two_sided=True)[1] == 1.0
    F = res.contrast(["a", "b"])
    assert F.stat()[3] == 0 and F.z_score()[3] == 0 and F.p_value()[3] == 1.0
    assert np.isfinite(F.z_score()).all()
    assert res.theta[X.columns.get_loc("constant"), 1] == 7.5


def test_shape_errors():
    rng = np.random.default_rng(2)
    X = random_design(rng, 30, "block")
    with pytest.raises(DataError, match=r"X has shape \(30, 4\) and Y has shape \(29, 3\)"):
        run_glm(rng.standard_normal((29, 3)), X)
    with pytest.raises(DataError, match=r"must be 2-D, of shape \(n_frames, n_units\)"):
        run_glm(rng.standard_normal(30), X)
    with pytest.raises(DataError, match=r"no units"):
        run_glm(np.zeros((30, 0)), X)
    with pytest.raises(DesignMatrixError, match=r"rank deficient .*dup = a"):
        run_glm(rng.standard_normal((30, 3)), X.assign(dup=X["a"]))
    with pytest.raises(DataError, match=r"no residual degrees of freedom"):
        run_glm(rng.standard_normal((4, 3)),
                pd.DataFrame({"a": [1.0, 0, 1, 1], "c": 1.0, "z": np.arange(4.0)}),
                noise_model="ar1", first_frame="drop", rho=0.1)


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(noise_model="ar2"), ValueError, r"Allowed values for noise_model .*Did you mean 'ar1'"),
    (dict(noise_model="ar1", first_frame="first"), ValueError, r"Allowed values for first_frame"),
    (dict(noise_model="ar1", bins=0), ValueError, r"bins must be None or a positive integer"),
    (dict(rho=0.3), ValueError, r"rho is only used with noise_model='ar1'"),
    (dict(noise_model="ar1", rho=np.nan), ValueError, r"rho must be finite"),
    (dict(chunk_size=0), ValueError, r"chunk_size must be a positive integer"),
    (dict(n_jobs=0), ValueError, r"n_jobs must be a positive integer or -1"),
])
def test_option_errors(kwargs, err, match):
    rng = np.random.default_rng(3)
    X = random_design(rng, 30, "block")
    with pytest.raises(err, match=match):
        run_glm(rng.standard_normal((30, 3)), X, **kwargs)


# ------------------------------------------------------------------------------- contrasts
def test_contrast_expressions():
    cols = ["medical_imaging", "control", "my cond", "drift_1", "constant"]
    v = expression_to_contrast_vector
    assert v("medical_imaging - control", cols).tolist() == [1, -1, 0, 0, 0]
    assert v("2*medical_imaging - (control + drift_1) / 2", cols).tolist() == [2, -.5, 0, -.5, 0]
    assert v("`my cond` - control", cols).tolist() == [0, -1, 1, 0, 0]
    assert v("my cond", cols).tolist() == [0, 0, 1, 0, 0]
    assert v("-control*3", cols).tolist() == [0, -3, 0, 0, 0]
    C, stat_type, name = contrast_matrix(["medical_imaging", "control"], cols)
    assert C.shape == (2, 5) and stat_type == "F" and name == "medical_imaging; control"
    C, stat_type, _ = contrast_matrix({"control": -1, "medical_imaging": 1}, cols)
    assert C.tolist() == [[1, -1, 0, 0, 0]] and stat_type == "t"
    C, stat_type, _ = contrast_matrix(np.eye(5)[:1], cols, "F")
    assert stat_type == "F"


@pytest.mark.parametrize("expr,match", [
    ("medical_imagin - control", r"names 'medical_imagin'.*Did you mean 'medical_imaging'\?"),
    ("medical_imaging * control", r"multiplies two regressors"),
    ("medical_imaging + 1", r"adds a constant"),
    ("medical_imaging / control", r"divides by a regressor"),
    ("medical_imaging / 0", r"divides by zero"),
    ("medical_imaging -", r"Cannot parse the contrast"),
    ("medical_imaging ** 2", r"Unsupported syntax"),
    ("2 * 3", r"names no design column"),
])
def test_contrast_expression_errors(expr, match):
    with pytest.raises(ContrastError, match=match):
        expression_to_contrast_vector(expr, ["medical_imaging", "control", "constant"])


@pytest.mark.parametrize("cdef,kwargs,match", [
    ([1.0, 0.0], {}, r"must have 3 columns .* but got shape \(2,\)"),
    ([0, 0, 0], {}, r"all zeros"),
    ([np.nan, 1, 0], {}, r"NaN or infinite"),
    (np.eye(3)[:2], {"stat_type": "t"}, r"A t contrast has one row"),
    ([[1, 0, 0], [2, 0, 0]], {}, r"linearly dependent"),
    ({"nope": 1}, {}, r"names 'nope'"),
    ("a", {"stat_type": "z"}, r"Allowed values for stat_type"),
    (object(), {}, r"contrast_def must be"),
])
def test_contrast_definition_errors(cdef, kwargs, match):
    with pytest.raises(ContrastError, match=match):
        contrast_matrix(cdef, ["a", "b", "constant"], **kwargs)


def test_compute_contrast_function_and_fixed_effects():
    rng = np.random.default_rng(8)
    X = random_design(rng, 60, "block")
    runs = [run_glm(rng.standard_normal((60, 4)) + 0.5 * X[["a"]].to_numpy(), X) for _ in range(3)]
    cons = [r.contrast("a - b") for r in runs]
    fe = compute_contrast(runs, "a - b")
    close(fe.effect_size(), np.mean([c.effect for c in cons], axis=0))
    close(fe.effect_variance(), np.sum([c.variance for c in cons], axis=0) / 9)
    assert fe.dof == sum(c.dof for c in cons)
    pw = compute_contrast(runs, "a - b", precision_weighted=True)
    w = 1 / np.array([c.variance for c in cons])
    close(pw.effect_size(), (w * np.array([c.effect for c in cons])).sum(0) / w.sum(0))
    close(pw.effect_variance(), 1 / w.sum(0))
    Ffe = compute_contrast(runs, ["a", "b"])
    assert Ffe.stat_type == "F" and Ffe.stat().shape == (4,)
    with pytest.raises(TypeError, match=r"results must be GLMResults"):
        compute_contrast(np.zeros(3), "a")
    with pytest.raises(ValueError, match=r"empty list"):
        compute_contrast([], "a")
    with pytest.raises(ContrastError, match=r"at least one contrast"):
        compute_fixed_effects([])
    with pytest.raises(ContrastError, match=r"Cannot combine a t contrast"):
        cons[0] + Ffe
    with pytest.raises(ContrastError, match=r"over 4 and 2 units"):
        cons[0] + Contrast(np.ones(2), np.ones(2), 10)
    with pytest.raises(ContrastError, match=r"t contrasts only"):
        compute_fixed_effects([Ffe, Ffe], precision_weighted=True)
    zero = Contrast(np.zeros(4), np.zeros(4), 10)
    with pytest.warns(ConstantUnitWarning, match=r"zero variance and zero effect in some runs"):
        compute_fixed_effects([cons[0], zero], precision_weighted=True)
    assert (cons[0] / 2).effect[0] == cons[0].effect[0] / 2
    assert repr(cons[0]).startswith("Contrast('a - b', stat_type='t'")


def test_contrast_class_validation():
    with pytest.raises(ContrastError, match=r"same shape"):
        Contrast(np.ones(3), np.ones(2), 5)
    with pytest.raises(ContrastError, match=r"needs variance of shape \(2, 2, 3\)"):
        Contrast(np.ones((2, 3)), np.ones(3), 5, "F")
    one_row_F = Contrast(np.ones(3) * 2, np.ones(3), 5, "F")
    close(one_row_F.stat(), np.full(3, 4.0))


# ------------------------------------------------------------------------- statistics
def test_z_scores_are_stable_in_the_tails():
    t = np.array([-1e6, -300.0, -40.0, -3.0, 0.0, 3.0, 40.0, 300.0, 1e6])
    for dof in (5, 100, 2000, 1e6, np.inf):
        z = z_from_t(t, dof)
        assert np.isfinite(z).all() and np.all(np.diff(z) > 0)
        assert np.array_equal(z, -z[::-1]) and z[4] == 0
        mid = np.abs(t) <= 40
        if np.isfinite(dof):
            ref = stats.norm.isf(stats.t.sf(t[mid], dof))
            ok = np.isfinite(ref)
            close(z[mid][ok], ref[ok], rtol=1e-8, atol=1e-10)
    # log tail matches scipy where scipy is finite, continues beyond
    close(t_logsf(np.array([30.0]), 100), stats.t.logsf(30.0, 100), rtol=1e-12)
    x = 100 / (100 + 30.0 ** 2)
    from llmfmri.glm._stats import _log_betainc

    close(_log_betainc(50, 0.5, x) + np.log(0.5), stats.t.logsf(30.0, 100), rtol=1e-10)
    assert t_logsf(np.array([1e3]), 2000)[0] < -5000
    zf = z_from_f(np.array([0.01, 1.0, 10.0, 1e4, 1e9]), 3, 500)
    assert np.isfinite(zf).all() and np.all(np.diff(zf) > 0)
    close(zf[:3], stats.norm.isf(stats.f.sf([0.01, 1.0, 10.0], 3, 500)), rtol=1e-8)
    assert f_logsf(np.array([1e9]), 3, 500)[0] < -1000
    zinf = z_from_f(np.array([2.0]), 3, np.inf)
    close(zinf, stats.norm.isf(stats.chi2.sf(6.0, 3)))


def test_results_accessors():
    rng = np.random.default_rng(9)
    X = random_design(rng, 50, "block")
    res = run_glm(rng.standard_normal((50, 3)), X, noise_model="ar1")
    assert res.effect is res.theta and res.n_units == 3 and res.n_frames == 50
    assert res.vcov().shape == (4, 4, 3) and res.vcov(units=[0]).shape == (4, 4, 1)
    close(res.z[0], z_from_t(res.t[0], res.dof))
    assert "GLMResults(noise_model='ar1'" in repr(res)
    unscaled = res.vcov(dispersion=False)
    close(unscaled[..., 0] * res.dispersion[0], res.vcov()[..., 0])


def test_rho_bias_map_matches_dense_traces_and_reduces_bias():
    from llmfmri.glm._engine import _rho_bias_map

    rng = np.random.default_rng(10)
    n = 60
    X = random_design(rng, n, "block").to_numpy()
    Q, _ = np.linalg.qr(X)
    grid = np.array([-0.5, 0.0, 0.3, 0.7])
    fine, expected = _rho_bias_map(Q, Q[:-1].T @ Q[1:])
    R = np.eye(n) - Q @ Q.T
    S = np.eye(n, k=1)
    for r in grid:
        V = toeplitz(r ** np.arange(n)) / (1 - r * r)
        g = (np.trace(S @ R @ V @ R) / (n - 1)) / (np.trace(R @ V) / n)
        assert abs(np.interp(r, fine, expected) - g) < 1e-4
    assert np.all(np.diff(expected) > 0)
    # on AR(0.6) noise the corrected estimate is closer to the truth
    Y = ar1_noise(rng, 300, 3000, 0.6)
    Xb = random_design(rng, 300, "block")
    raw = run_glm(Y, Xb, noise_model="ar1", bias_correction=False).rho.mean()
    corrected = run_glm(Y, Xb, noise_model="ar1").rho.mean()
    assert abs(corrected - 0.6) < abs(raw - 0.6) / 2
