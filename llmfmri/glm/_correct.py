"""Multiple comparisons: FDR (Benjamini-Hochberg), Bonferroni, and permutation max-T (FWER)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .._utils import check_option, did_you_mean, logger
from ..design import check_design_matrix
from ._contrast import contrast_matrix
from ..exceptions import DataError
from ._data import as_2d, column_block
from ._unitmap import UnitMap

__all__ = ["correct", "permutation_max_t", "PermutationResult", "GroupShuffler", "max_t_null"]

_METHODS = ("fdr", "fdr_bh", "bonferroni")


def correct(p_values, method="fdr"):
    """Adjust p values for multiple comparisons across units.

    Parameters
    ----------
    p_values : UnitMap or array of shape (n_units,)
        Uncorrected p values (e.g. ``glm.compute_contrast(..., output_type="p_value")``).
    method : {"fdr", "fdr_bh", "bonferroni"}, default="fdr"
        ``"fdr"`` (= ``"fdr_bh"``): Benjamini-Hochberg adjusted p values
        (q values); ``"bonferroni"``: ``min(1, p * n_units)``. Both equal
        statsmodels' ``multipletests(...)[1]``. For family-wise error control
        by permutation use :func:`permutation_max_t` (or
        ``FirstLevelGLM.permutation_test``), which needs the data, not p values.

    Returns
    -------
    UnitMap or ndarray
        Adjusted p values, of the input's type; a unit is significant at level
        ``alpha`` where the adjusted p is ``<= alpha``.

    Examples
    --------
    >>> correct(np.array([0.01, 0.02, 0.03, 0.5]), "fdr").round(3).tolist()
    [0.04, 0.04, 0.04, 0.5]
    """
    if method in ("maxt", "max_t", "permutation"):
        raise ValueError(
            "max-T correction needs the data and design, not p values: use "
            "llmfmri.glm.permutation_max_t(...) or FirstLevelGLM.permutation_test(...)."
        )
    check_option("method", method, _METHODS)
    is_map = isinstance(p_values, UnitMap)
    p = np.asarray(p_values.values if is_map else p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D (one per unit), but got shape {p.shape}.")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        bad = np.flatnonzero(~(np.isfinite(p) & (p >= 0) & (p <= 1)))
        raise ValueError(
            f"p_values must lie in [0, 1], but {bad.size} do not (first at units "
            f"{bad[:5].tolist()}: {p[bad[:5]].tolist()})."
        )
    if is_map and p_values.output_type != "p_value":
        raise ValueError(
            f"correct needs a map of p values, but got output_type={p_values.output_type!r}; "
            "use compute_contrast(..., output_type='p_value')."
        )
    m = p.size
    if method == "bonferroni":
        adj = np.minimum(p * m, 1.0)
    else:
        order = np.argsort(p, kind="mergesort")
        ranked = p[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(ranked, 1.0)
    name = "fdr" if method == "fdr_bh" else method
    if is_map:
        return p_values._replace(adj, correction=name)
    return adj


# ------------------------------------------------------------------ permutation max-T
class PermutationResult:
    """Result of a permutation max-T test.

    Attributes
    ----------
    stat : ndarray of shape (n_units,)
        Observed t statistics (OLS; fixed effects across runs).
    p_fwer : ndarray of shape (n_units,)
        Family-wise error corrected p values,
        ``(1 + #{permutations with max >= observed}) / (n_perm + 1)``.
    null_max : ndarray of shape (n_perm,)
        Maximum (of ``|t|`` when two-sided) over units, per permutation.
    n_perm : int
    two_sided : bool
    contrast : str
    units : UnitSpace or None
    inference : str
        ``"permutation"`` (recorded on the maps, see ``llmfmri.glm.INFERENCES``).
    by : str or None
        What was exchanged (``"prompt_id"``, ``"block"``), when known.
    """

    def __init__(self, stat, null_max, *, two_sided, contrast, units=None, dof=None, by=None):
        self.inference = "permutation"
        self.by = by
        self.stat = stat
        self.null_max = null_max
        self.two_sided = two_sided
        self.contrast = contrast
        self.units = units
        self.dof = dof
        self.n_perm = int(null_max.size)
        obs = np.abs(stat) if two_sided else stat
        sorted_null = np.sort(null_max)
        exceed = sorted_null.size - np.searchsorted(sorted_null, obs, side="left")
        self.p_fwer = (1.0 + exceed) / (self.n_perm + 1.0)

    def __repr__(self):
        return (f"PermutationResult({self.contrast!r}, n_perm={self.n_perm}, "
                f"two_sided={self.two_sided}, "
                f"n_significant(0.05)={int((self.p_fwer <= 0.05).sum())})")

    def threshold(self, alpha=0.05):
        """Critical statistic: units with ``|t|`` (or t) above it have ``p_fwer <= alpha``."""
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), but got {alpha}.")
        k = int(np.floor(alpha * (self.n_perm + 1))) - 1  # exceedances allowed
        sorted_null = np.sort(self.null_max)[::-1]
        if k < 0:
            return np.inf
        return float(sorted_null[min(k, sorted_null.size - 1)])

    def p_map(self):
        """The FWER p values as a :class:`UnitMap`."""
        return UnitMap(self.p_fwer, self.units, stat_type="t", output_type="p_value",
                       contrast=self.contrast, dof=self.dof, correction="maxt",
                       inference=self.inference)

    def stat_map(self):
        """The observed t statistics as a :class:`UnitMap`."""
        return UnitMap(self.stat, self.units, stat_type="t", output_type="stat",
                       contrast=self.contrast, dof=self.dof, inference=self.inference)


class GroupShuffler:
    """Permutes the values of some design columns between groups of frames (blocks, prompts)."""

    def __init__(self, X, groups, columns, names, run_label=""):
        groups = np.asarray(groups)
        n = X.shape[0]
        if groups.shape != (n,):
            raise DataError(
                f"groups{run_label} must have one label per frame, shape ({n},), but got shape "
                f"{groups.shape}."
            )
        codes, uniques = pd.factorize(pd.Series(groups), use_na_sentinel=True)
        self.codes = codes
        self.columns = columns
        fixed = codes < 0
        if fixed.any() and np.any(X[fixed][:, columns] != 0):
            raise DataError(
                f"Frames without a group label{run_label} have non-zero values in the permuted "
                f"columns {[names[c] for c in columns]}; give every such frame a group."
            )
        G = len(uniques)
        if G < 2:
            raise DataError(
                f"Permutation needs at least 2 groups{run_label} (blocks or prompts) to exchange, "
                f"but got {G}."
            )
        V = np.zeros((G, len(columns)))
        for g in range(G):
            rows = X[codes == g][:, columns]
            if not np.all(rows == rows[0]):
                bad = [names[c] for c, ok in zip(columns, np.all(rows == rows[0], axis=0))
                       if not ok]
                raise DataError(
                    f"Columns {bad} vary within group {uniques[g]!r}{run_label}, so groups "
                    "cannot be "
                    "exchanged as wholes. Permutation max-T exchanges block- or prompt-level "
                    "labels: use boxcar regressors (hrf_model=None), or FirstLevelGLM."
                    "permutation_test, which rebuilds HRF designs from permuted events."
                )
            V[g] = rows[0]
        self.V = V
        self.n_groups = G
        self.X = X

    def design(self, perm):
        X = self.X.copy()
        live = self.codes >= 0
        X[np.ix_(live, self.columns)] = self.V[perm][self.codes[live]]
        return X


def _ols_t_parts(X, c):
    """Orthonormal basis Q of X and w with effect = w'Q'y, unscaled var = |w|^2."""
    Q, R = np.linalg.qr(X)
    w = np.linalg.solve(R.T, c)
    return Q, w


def max_t_null(runs, c, *, n_perm, two_sided, rng, chunk_size=None, verbose=0):
    """Core of the max-T test over runs.

    Parameters
    ----------
    runs : list of (Y, design_fn, n_groups, dof)
        ``design_fn(perm)`` returns the design for a group permutation ``perm``
        (``None`` = observed design).
    c : ndarray of shape (p,)

    Returns
    -------
    stat : ndarray (n_units,), null_max : ndarray (n_perm,)

    Notes
    -----
    For every permutation the design's orthonormal basis ``Q`` and the vector
    ``w`` with ``effect = w' Q' y`` are computed once; all permutations of a run
    are stacked into one (n_frames, n_perm * p) matrix, so each data sub-block
    costs one large matrix product. Memory: ``8 * n_frames * n_perm * p`` bytes
    per run.
    """
    n_units = runs[0][0].shape[1]
    p = c.size
    stacks = []
    for Y, design_fn, ng, dof in runs:
        Q0, w0 = _ols_t_parts(design_fn(None), c)
        Qall = np.empty((Q0.shape[0], n_perm * p))
        W = np.empty((n_perm, p))
        for k in range(n_perm):
            Q, w = _ols_t_parts(design_fn(rng.permutation(ng)), c)
            Qall[:, k * p:(k + 1) * p] = Q
            W[k] = w
        stacks.append((Q0, w0, Qall, W, dof))
    null_max = np.full(n_perm, -np.inf)
    stat = np.empty(n_units)
    block = min(column_block(Y, Y.shape[0], n_units, chunk_size) for (Y, *_) in runs)
    width = int(max(16, min(4096, (64 * 2 ** 20) // (8 * n_perm * p))))
    t0 = time.perf_counter()
    for start in range(0, n_units, block):
        stop = min(start + block, n_units)
        Ybs = [np.asarray(Y[:, start:stop]) for Y, *_ in runs]
        for a in range(0, stop - start, width):
            b = min(a + width, stop - start)
            eff_o = var_o = 0.0
            eff = var = 0.0
            for Yb, (Q0, w0, Qall, W, dof) in zip(Ybs, stacks):
                y = np.asarray(Yb[:, a:b], dtype=np.float64)
                if not np.isfinite(y).all():
                    raise DataError(
                        "Y has NaN or infinite values; clean them before a permutation test."
                    )
                yy = np.einsum("ij,ij->j", y, y)
                Z0 = Q0.T @ y
                rss0 = yy - np.einsum("ij,ij->j", Z0, Z0)
                # constant units (rss is rounding noise): variance 0, statistic 0
                rss0 = np.where(rss0 > 1e-12 * yy, rss0, 0.0)
                eff_o = eff_o + w0 @ Z0
                var_o = var_o + (w0 @ w0) * rss0 / dof
                Z = (Qall.T @ y).reshape(n_perm, p, -1)
                rss = yy[None] - np.einsum("mpc,mpc->mc", Z, Z)
                rss = np.where(rss > 1e-12 * yy[None], rss, 0.0)
                eff = eff + np.einsum("mp,mpc->mc", W, Z)
                var = var + (W * W).sum(1)[:, None] * rss / dof
            with np.errstate(divide="ignore", invalid="ignore"):
                stat[start + a:start + b] = np.where(var_o > 0, eff_o / np.sqrt(var_o), 0.0)
                tp = np.where(var > 0, eff / np.sqrt(var), 0.0)
            if two_sided:
                tp = np.abs(tp)
            np.maximum(null_max, tp.max(axis=1), out=null_max)
        if verbose:
            logger.info("permutation max-T: %d/%d units (%.1f s)", stop, n_units,
                        time.perf_counter() - t0)
    return stat, null_max


def permutation_max_t(Y, design_matrix, contrast_def, *, groups, columns=None, n_perm=1000,
                      two_sided=True, random_state=None, units=None, chunk_size=None, verbose=0):
    """Family-wise error control by permutation of block or prompt labels (max-T).

    Under the null hypothesis the labels of whole groups of frames (blocks or
    prompts) are exchangeable, so the regressors of interest are permuted
    between groups, never between single frames: the autocorrelation of
    token series inside a block stays intact and the test stays valid without
    modelling it. Each permutation refits the OLS GLM of every unit; the
    maximum t over units builds the null distribution of the family-wise
    maximum.

    Parameters
    ----------
    Y : array-like of shape (n_frames, n_units), or a list of them (runs)
        Data (read in column blocks, as :func:`run_glm`).
    design_matrix : DataFrame of shape (n_frames, p), or a list of them
        Observed design(s), with the same columns in every run.
    contrast_def : str, dict or vector
        A t contrast.
    groups : array of shape (n_frames,), or a list of them
        Exchangeable group (block or prompt) of each frame. Permutations are
        within run. Frames with a NaN group stay fixed (their permuted
        columns must be 0).
    columns : list of str, optional
        Columns permuted between groups; by default those with a non-zero
        weight in the contrast. They must be constant within each group
        (boxcar regressors).
    n_perm : int, default=1000
    two_sided : bool, default=True
        Use ``|t|``.
    random_state : int or numpy Generator, optional
    units : UnitSpace, optional
    chunk_size : int, optional
        Units per read block.

    Returns
    -------
    PermutationResult
        ``p_fwer`` per unit, the null maxima and a critical threshold.

    Notes
    -----
    The statistic is the OLS t (a fixed-effects t across runs). With randomly
    assigned block labels the test is exact whatever the noise
    autocorrelation.
    """
    multi = isinstance(Y, (list, tuple))
    Ys = list(Y) if multi else [Y]
    Xs = list(design_matrix) if isinstance(design_matrix, (list, tuple)) else [design_matrix]
    gs = list(groups) if isinstance(groups, (list, tuple)) else [groups]
    if not (len(Ys) == len(Xs) == len(gs)):
        raise DataError(
            f"Y, design_matrix and groups must list the same runs, but got {len(Ys)}, "
            f"{len(Xs)} and {len(gs)}."
        )
    if isinstance(n_perm, bool) or int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, but got {n_perm!r}.")
    rng = np.random.default_rng(random_state)
    runs = []
    C = names = None
    n_units = None
    for r, (y, X, g) in enumerate(zip(Ys, Xs, gs)):
        y, (n, u) = as_2d(y)
        if n_units is None:
            n_units = u
        elif u != n_units:
            raise DataError(
                f"All runs need the same units, but run {r} has {u} and run 0 {n_units}."
            )
        label = f" (run {r})" if multi else ""
        Xdf = check_design_matrix(X, name=f"design_matrix{label}", n_frames=n)
        cols = [str(c) for c in Xdf.columns]
        if names is None:
            names = cols
            C, stat_type, cname = contrast_matrix(contrast_def, cols, "t")
            c = C[0]
            if columns is not None:
                missing = [cc for cc in columns if cc not in names]
                if missing:
                    raise DataError(
                        f"columns names {missing[0]!r}, which is not a design column; columns "
                        f"are {names}." + did_you_mean(missing[0], names)
                    )
            perm_cols = ([names.index(cc) for cc in columns] if columns is not None
                         else list(np.flatnonzero(c)))
        elif cols != names:
            raise DataError(f"design_matrix{label} has columns {cols}, but run 0 has {names}.")
        Xa = Xdf.to_numpy(dtype=np.float64)
        shuffler = GroupShuffler(Xa, g, perm_cols, names, label)

        def design_fn(perm, _s=shuffler, _X=Xa):
            return _X if perm is None else _s.design(perm)

        runs.append((y, design_fn, shuffler.n_groups, float(n - len(names))))
    stat, null_max = max_t_null(runs, c, n_perm=int(n_perm), two_sided=two_sided, rng=rng,
                                chunk_size=chunk_size, verbose=verbose)
    dof = sum(r[3] for r in runs)
    return PermutationResult(stat, null_max, two_sided=two_sided, contrast=cname, units=units,
                             dof=dof)
