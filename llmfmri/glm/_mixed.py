"""A mixed-model oracle: frames nested in prompts, a random intercept per prompt (statsmodels).

For a handful of units (a region, a network), fit statsmodels' ``MixedLM``
with the conditions as fixed effects and one random intercept per prompt:
the model that the prompt-level summary-statistics path
(``SecondLevelGLM.fit_prompts``) approximates. It is slow (one optimisation
per unit) and meant to check the fast path, not to replace it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._utils import did_you_mean, progress_bar, with_verbose
from ..design import check_events, events_per_frame
from ..exceptions import DataError
from ._contrast import Contrast, contrast_matrix
from ._data import as_2d, recording_runs

__all__ = ["fit_mixed", "MixedGLM"]


def _labels(ev, column, n, run):
    if column not in ev.columns:
        raise DataError(
            f"events of run {run} have no {column!r} column; columns are {list(ev.columns)}."
            + did_you_mean(column, ev.columns)
        )
    values, _ = events_per_frame(ev, column, np.arange(n, dtype=float))
    return pd.Series(values, dtype=object)


@with_verbose
def fit_mixed(data, events=None, *, units=None, by="prompt_id", condition="trial_type",
              runs=None, reml=True, fit_kwargs=None, verbose=0):
    """Linear mixed model per unit: conditions as fixed effects, a random intercept per prompt.

    ``y[f] = sum_c beta_c [condition(f) = c] + u[prompt(f)] + e[f]`` with
    ``u ~ N(0, sigma_u^2)`` and ``e ~ N(0, sigma^2)``, fitted by (RE)ML with
    statsmodels' ``MixedLM`` (Lindstrom & Bates 1988; Laird & Ware 1982).
    Prompts are identified by ``(run, prompt)`` so that ids repeated in
    different runs are different groups. Frames without a condition
    (baseline) are left out, as ``SecondLevelGLM.fit_prompts`` leaves out
    their prompts.

    When every prompt has the same number of frames and the REML variance
    of the prompts is not on its boundary (0), the contrast estimate and its
    standard error equal those of the OLS across prompt means, so the Wald
    z here equals the prompt-level t; the p values differ only by the
    reference distribution (normal here, Student's t with
    ``n_prompts - n_conditions`` dof there).

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
    events : DataFrame or list of DataFrame, optional
        Per-frame events (a Recording's own by default) with the ``by`` and
        ``condition`` columns.
    units : array of int or Network, optional
        Columns to fit (anything with ``.columns`` works); all by default,
        which is slow beyond a few hundred units.
    by : str, default="prompt_id"
        Events column of the grouping factor (the random intercept).
    condition : str, default="trial_type"
        Events column of the fixed effects (one indicator column per value).
    runs : list, optional
        Subset of a Recording's runs.
    reml : bool, default=True
        Restricted maximum likelihood (statsmodels' default) or ML.
    fit_kwargs : dict, optional
        Extra arguments of ``MixedLM.fit`` (``method``, ``maxiter``...).
    verbose : int, default=0
        Show a progress bar over units.

    Returns
    -------
    MixedGLM
        ``.contrast("a - b")`` gives a :class:`Contrast` (Wald z: ``dof=inf``).

    Raises
    ------
    DataError
        For missing events columns, fewer than two prompts per fit, or
        non-finite data.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.glm import fit_mixed
    >>> rng = np.random.default_rng(0)
    >>> ev = pd.DataFrame({"onset": np.arange(120), "duration": 1,
    ...                    "trial_type": np.repeat(["a", "b"] * 6, 10),
    ...                    "prompt_id": np.arange(120) // 5})
    >>> offsets = rng.standard_normal(24)[ev.prompt_id]
    >>> Y = rng.standard_normal((120, 2)) + offsets[:, None]
    >>> fit = fit_mixed(Y, ev, units=[0, 1])
    >>> fit.columns, fit.params.shape
    (['a', 'b'], (2, 2))
    >>> fit.contrast("a - b").stat().shape
    (2,)
    """
    import statsmodels.api as sm

    arrays, evs, runs, _ = recording_runs(data, runs, events=events)
    if any(e is None for e in evs):
        raise DataError("fit_mixed needs per-frame events for every run (events=...).")
    ys, groups, conds = [], [], []
    n_units = None
    for run, Y, ev in zip(runs, arrays, evs):
        Y, (n, u) = as_2d(Y, name=f"run {run}")
        if n_units is None:
            n_units = u
        elif u != n_units:
            raise DataError(f"All runs need the same units, but run {run} has {u} and run "
                            f"{runs[0]} has {n_units}.")
        ev = check_events(ev)
        g = _labels(ev, by, n, run)
        c = _labels(ev, condition, n, run)
        keep = (g.notna() & c.notna()).to_numpy()
        ys.append((Y, np.flatnonzero(keep)))
        groups.append(np.array([f"{run}\x00{v}" for v in g[keep]], dtype=object))
        conds.append(c[keep].astype(str).to_numpy())
    if units is None:
        cols = np.arange(n_units)
    else:
        cols = np.asarray(getattr(units, "columns", units), dtype=np.int64).ravel()
        if cols.size == 0 or cols.min() < 0 or cols.max() >= n_units:
            raise DataError(f"units must be non-empty columns in [0, {n_units}), but got "
                            f"{cols[:10].tolist()}.")
    lo, hi = int(cols.min()), int(cols.max()) + 1

    def read(Y):
        if isinstance(Y, np.ndarray):
            return np.asarray(Y[:, cols], dtype=np.float64)
        if hasattr(Y, "get_orthogonal_selection"):   # zarr
            return np.asarray(Y.get_orthogonal_selection((slice(None), cols)), dtype=np.float64)
        if hi - lo <= 4 * cols.size:   # other lazy arrays: the covering range when it is small
            return np.asarray(Y[:, lo:hi], dtype=np.float64)[:, cols - lo]
        return np.column_stack([np.asarray(Y[:, c:c + 1], dtype=np.float64)[:, 0]
                                for c in cols])

    Ysel = np.vstack([read(Y)[idx] for Y, idx in ys])
    if not np.isfinite(Ysel).all():
        raise DataError("The selected units have NaN or infinite values in the fitted frames.")
    group = np.concatenate(groups)
    cond = np.concatenate(conds)
    n_groups = len(pd.unique(group))
    if n_groups < 2:
        raise DataError(f"fit_mixed needs at least 2 groups ({by}) with a {condition!r}, but "
                        f"got {n_groups}.")
    names = sorted(pd.unique(cond).tolist(), key=str)
    X = pd.DataFrame({c: (cond == c).astype(float) for c in names})
    fit_kwargs = dict(fit_kwargs or {})
    results, boundary = [], []
    with progress_bar(total=cols.size, desc="MixedLM", unit="unit", verbose=verbose) as bar:
        for k in range(cols.size):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                res = sm.MixedLM(Ysel[:, k], X, groups=group).fit(reml=reml, **fit_kwargs)
            boundary.append(any("boundary" in str(w.message) for w in caught))
            results.append(res)
            bar.update(1)
    return MixedGLM(results, cols, list(X.columns), n_groups=n_groups, n_obs=len(group),
                    reml=reml, boundary=np.array(boundary))


class MixedGLM:
    """Per-unit ``MixedLM`` results in the llmfmri contrast vocabulary (see :func:`fit_mixed`).

    Attributes
    ----------
    results : list
        One statsmodels ``MixedLMResults`` per unit.
    units : ndarray of int
        The fitted columns.
    columns : list of str
        Fixed-effect columns (one per condition).
    params : ndarray of shape (n_fitted, n_columns)
        Fixed effects.
    cov : ndarray of shape (n_fitted, n_columns, n_columns)
        Their covariance.
    group_variance : ndarray of shape (n_fitted,)
        Variance of the random intercept (between prompts).
    residual_variance : ndarray of shape (n_fitted,)
        Variance of frames within a prompt.
    converged : ndarray of bool
    boundary : ndarray of bool
        True where the group variance is on its boundary (0).
    n_groups, n_obs : int
        Prompts and frames fitted.
    """

    def __init__(self, results, units, columns, *, n_groups, n_obs, reml, boundary):
        self.results = results
        self.units = np.asarray(units)
        self.columns = list(columns)
        p = len(self.columns)
        self.params = np.vstack([np.asarray(r.fe_params) for r in results])
        self.cov = np.stack([np.asarray(r.cov_params())[:p, :p] for r in results])
        self.group_variance = np.array([float(np.asarray(r.cov_re)[0, 0]) for r in results])
        self.residual_variance = np.array([float(r.scale) for r in results])
        self.converged = np.array([bool(r.converged) for r in results])
        self.boundary = boundary
        self.n_groups = n_groups
        self.n_obs = n_obs
        self.reml = reml

    def __repr__(self):
        return (f"MixedGLM(n_units={self.units.size}, n_groups={self.n_groups}, "
                f"n_obs={self.n_obs}, {'REML' if self.reml else 'ML'})")

    def __len__(self):
        return self.units.size

    def contrast(self, contrast_def, stat_type=None):
        """Wald test of a contrast of the fixed effects, per unit.

        Returns
        -------
        Contrast
            With ``dof=inf`` (statsmodels' MixedLM reports normal-reference
            Wald tests): ``.stat()`` is the z, ``.p_value(two_sided=True)``
            statsmodels' ``P>|z|``.
        """
        C, stat_type, name = contrast_matrix(contrast_def, self.columns, stat_type)
        effect = C @ self.params.T                                   # (q, U)
        var = np.einsum("ij,ujk,lk->ilu", C, self.cov, C)             # (q, q, U)
        if stat_type == "t":
            return Contrast(effect[0], var[0, 0], np.inf, "t", name=name)
        return Contrast(effect, var, np.inf, "F", name=name)

    def to_frame(self, contrast_def):
        """Tidy per-unit table of a t contrast.

        Returns
        -------
        pandas.DataFrame
            ``column, effect, se, z, p`` (two-sided), ``group_variance``,
            ``residual_variance``, ``converged``, ``boundary``.
        """
        c = self.contrast(contrast_def, "t")
        return pd.DataFrame({"column": self.units, "effect": c.effect_size(),
                             "se": np.sqrt(c.effect_variance()), "z": c.stat(),
                             "p": c.p_value(two_sided=True),
                             "group_variance": self.group_variance,
                             "residual_variance": self.residual_variance,
                             "converged": self.converged, "boundary": self.boundary})
