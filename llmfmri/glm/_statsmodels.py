"""A statsmodels backend: any statsmodels model per unit, in the same contrast vocabulary.

For a network, a region or any subset of units, fit OLS, GLSAR, GLM families,
robust RLM, or OLS with HAC (Newey-West) covariance per unit and get the
statsmodels results back. It is slow (a Python loop over units) and meant for
hundreds to a few thousand units; the fast path (:func:`run_glm`) is tested
against it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import check_option
from ..design import check_design_matrix
from ._contrast import Contrast, contrast_matrix
from ..exceptions import DataError
from ._data import as_2d

__all__ = ["fit_statsmodels", "StatsmodelsGLM"]

_MODELS = ("ols", "glsar", "glm", "rlm", "wls")
_FAMILIES = ("gaussian", "poisson", "binomial", "gamma", "inverse_gaussian",
             "negative_binomial", "tweedie")


def _family(family):
    import statsmodels.api as sm

    if family is None:
        return sm.families.Gaussian()
    if isinstance(family, str):
        check_option("family", family, _FAMILIES)
        name = {"gaussian": "Gaussian", "poisson": "Poisson", "binomial": "Binomial",
                "gamma": "Gamma", "inverse_gaussian": "InverseGaussian",
                "negative_binomial": "NegativeBinomial", "tweedie": "Tweedie"}[family]
        return getattr(sm.families, name)()
    return family


def fit_statsmodels(Y, X, *, units=None, model="ols", family=None, cov_type="nonrobust",
                    cov_kwds=None, rho=None, maxiter=10, M=None, weights=None, fit_kwargs=None):
    """Fit a statsmodels model to each selected unit.

    Parameters
    ----------
    Y : array-like of shape (n_frames, n_units)
    X : DataFrame or array of shape (n_frames, p)
        Design matrix (full column rank).
    units : array of int, optional
        Columns to fit (e.g. ``UnitSpace.select(layers=3)`` or a network's
        units); all by default.
    model : {"ols", "glsar", "glm", "rlm", "wls"}, default="ols"
        ``"glsar"``: AR(1) errors, with ``rho`` fixed (a float or one per
        selected unit) or estimated by ``iterative_fit(maxiter)``; ``"glm"``:
        a generalised linear model of ``family``; ``"rlm"``: robust linear
        model with norm ``M`` (Huber by default); ``"wls"``: with ``weights``.
    family : str or statsmodels family, optional
        ``"gaussian"`` (default), ``"poisson"``, ``"binomial"``, ``"gamma"``...
    cov_type : str, default="nonrobust"
        statsmodels covariance type, e.g. ``"HAC"`` (Newey-West, for
        autocorrelated token series) with ``cov_kwds={"maxlags": 5}``, or
        ``"HC3"``. Used by ``"ols"``, ``"wls"``, ``"glm"`` and ``"glsar"``.
    cov_kwds : dict, optional
    rho : float or array, optional
        Fixed AR(1) coefficient(s) for ``"glsar"``.
    maxiter : int, default=10
        Iterations of ``GLSAR.iterative_fit`` when ``rho`` is None.
    M : statsmodels RobustNorm, optional
        Norm for ``"rlm"``.
    weights : array of shape (n_frames,), optional
        Weights for ``"wls"``.
    fit_kwargs : dict, optional
        Extra keyword arguments to ``fit``.

    Returns
    -------
    StatsmodelsGLM
        ``.results`` (one statsmodels results object per unit), ``.params``,
        and ``.contrast(...)`` in the vocabulary of :func:`compute_contrast`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.glm import fit_statsmodels
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"task": np.tile([0.0] * 5 + [1.0] * 5, 4), "constant": 1.0})
    >>> Y = rng.standard_normal((40, 3))
    >>> fit = fit_statsmodels(Y, X, units=[0, 2], cov_type="HAC", cov_kwds={"maxlags": 2})
    >>> fit.params.shape
    (2, 2)
    """
    import statsmodels.api as sm

    check_option("model", model, _MODELS)
    Y, (n, u) = as_2d(Y)
    if np.shape(X)[0] != n:
        raise DataError(
            f"X and Y must have the same number of frames, but X has shape {np.shape(X)} and "
            f"Y has shape {(n, u)}."
        )
    Xdf = check_design_matrix(X, name="X", n_frames=n)
    Xa = Xdf.to_numpy(dtype=np.float64)
    if units is None:
        cols = np.arange(u)
    else:
        cols = np.asarray(getattr(units, "columns", units), dtype=np.int64).ravel()
        if cols.size == 0:
            raise DataError("units is empty; select at least one unit.")
        if cols.min() < 0 or cols.max() >= u:
            raise DataError(f"units must be columns in [0, {u}), but range over "
                            f"[{cols.min()}, {cols.max()}].")
    if isinstance(Y, np.ndarray):
        Ysel = np.asarray(Y[:, cols], dtype=np.float64)
    else:  # lazy arrays: read the covering column range, then pick
        lo, hi = int(cols.min()), int(cols.max()) + 1
        Ysel = np.asarray(Y[:, lo:hi], dtype=np.float64)[:, cols - lo]
    if not np.isfinite(Ysel).all():
        bad = cols[~np.isfinite(Ysel).all(axis=0)]
        raise DataError(f"Y has NaN or infinite values in units {bad[:5].tolist()}.")
    fit_kwargs = dict(fit_kwargs or {})
    cov = {} if cov_type == "nonrobust" else {"cov_type": cov_type,
                                              "cov_kwds": dict(cov_kwds or {})}
    if rho is not None:
        if model != "glsar":
            raise ValueError("rho is only used with model='glsar'.")
        rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), (cols.size,))
    if model == "rlm" and cov:
        raise ValueError("model='rlm' has its own covariance (set via fit_kwargs={'cov': 'H1'}); "
                         "cov_type is not used.")
    results = []
    for k in range(cols.size):
        y = Ysel[:, k]
        if model == "ols":
            res = sm.OLS(y, Xa).fit(**cov, **fit_kwargs)
        elif model == "wls":
            if weights is None:
                raise ValueError("model='wls' needs weights=array of shape (n_frames,).")
            res = sm.WLS(y, Xa, weights=weights).fit(**cov, **fit_kwargs)
        elif model == "glsar":
            if rho is None:
                res = sm.GLSAR(y, Xa, rho=1).iterative_fit(maxiter=maxiter, **cov, **fit_kwargs)
            else:
                res = sm.GLSAR(y, Xa, rho=float(rho[k])).fit(**cov, **fit_kwargs)
        elif model == "glm":
            res = sm.GLM(y, Xa, family=_family(family)).fit(**cov, **fit_kwargs)
        else:
            res = sm.RLM(y, Xa, M=M).fit(**fit_kwargs)
        results.append(res)
    return StatsmodelsGLM(results, cols, Xdf, model)


class StatsmodelsGLM:
    """Per-unit statsmodels results with the llmfmri contrast vocabulary.

    Attributes
    ----------
    results : list
        One statsmodels results object per unit (``.summary()``, ``.resid``...).
    units : ndarray of int
        The fitted columns.
    design_matrix : pandas.DataFrame
    model : str
    """

    def __init__(self, results, units, design_matrix, model):
        self.results = results
        self.units = units
        self.design_matrix = design_matrix
        self.columns = [str(c) for c in design_matrix.columns]
        self.model = model

    def __repr__(self):
        return f"StatsmodelsGLM(model={self.model!r}, n_units={len(self.results)})"

    def __len__(self):
        return len(self.results)

    def __getitem__(self, k):
        return self.results[k]

    @property
    def params(self):
        """Coefficients, DataFrame of shape (n_units, n_regressors) indexed by unit column."""
        return pd.DataFrame(np.vstack([np.asarray(r.params) for r in self.results]),
                            index=pd.Index(self.units, name="column"), columns=self.columns)

    @property
    def dof(self):
        """Residual degrees of freedom per unit."""
        return np.array([float(r.df_resid) for r in self.results])

    def result(self, column):
        """The statsmodels results of unit ``column``."""
        hit = np.flatnonzero(self.units == column)
        if hit.size == 0:
            raise KeyError(f"Unit {column} was not fitted; fitted units: {self.units[:10].tolist()}"
                           + ("..." if self.units.size > 10 else ""))
        return self.results[int(hit[0])]

    def contrast(self, contrast_def, stat_type=None):
        """Compute a contrast from each unit's statsmodels estimates and covariance.

        The statistics equal statsmodels' ``t_test`` / ``f_test``: t uses
        Student's t with ``df_resid`` when the results use t (OLS, WLS, GLSAR
        with non-robust covariance), else the normal distribution; F uses
        F(q, ``df_resid``) as ``f_test`` does.

        Returns
        -------
        Contrast
        """
        C, stat_type, name = contrast_matrix(contrast_def, self.columns, stat_type)
        params = np.vstack([np.asarray(r.params) for r in self.results]).T   # (p, U)
        covs = np.stack([np.asarray(r.cov_params()) for r in self.results], axis=-1)  # (p,p,U)
        effect = C @ params
        var = np.einsum("ij,jku,lk->ilu", C, covs, C)
        dofs = {float(r.df_resid) for r in self.results}
        if len(dofs) != 1:
            raise DataError(f"Units have different residual dof {sorted(dofs)}; cannot combine.")
        dof = dofs.pop()
        use_t = bool(getattr(self.results[0], "use_t", False))
        if stat_type == "t":
            return Contrast(effect[0], var[0, 0], dof if use_t else np.inf, "t", name=name)
        return Contrast(effect, var, dof, "F", name=name)

    def summary_frame(self, contrast_def):
        """Tidy per-unit table of a t contrast: effect, variance, t, p (two-sided), z."""
        c = self.contrast(contrast_def, "t")
        return pd.DataFrame({"column": self.units, "effect": c.effect_size(),
                             "variance": c.effect_variance(), "t": c.stat(),
                             "p": c.p_value(two_sided=True), "z": c.z_score()})
