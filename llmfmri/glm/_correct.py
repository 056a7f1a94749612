"""Multiple comparisons: FDR (Benjamini-Hochberg), Bonferroni, and permutation max-T (FWER)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.linalg import solve_triangular

from .._utils import check_option, check_positive_int, did_you_mean, logger, renamed
from ..design import check_design_matrix
from ..exceptions import DataError
from ._contrast import contrast_matrix
from ._data import as_2d, column_block
from ._stats import ratio_stat
from ._unitmap import UnitMap

__all__ = ["correct", "permutation_max_t", "PermutationResult", "GroupShuffler", "DesignBasis",
           "max_t_null"]

_METHODS = ("fdr", "fdr_bh", "bonferroni")
_EPS = np.finfo(np.float64).eps


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
    >>> import numpy as np
    >>> from llmfmri.glm import correct
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
    n_permutations : int
        (also ``n_perm``, its old name)
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
        self.n_permutations = self.n_perm = int(null_max.size)
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
        """The design with the permuted columns' group values exchanged by ``perm``."""
        X = self.X.copy()
        live = self.codes >= 0
        X[np.ix_(live, self.columns)] = self.V[perm][self.codes[live]]
        return X

    # A permuted design differs from the observed one only in the permuted columns P, which
    # are constant within groups; the fixed columns F do not change. By Frisch-Waugh-Lovell,
    # the contrast's t in [P F] follows from y and P after projecting F out, and
    # P_perm' M_F y = V[perm]' D M_F y: the null needs only the G group sums of the
    # residualised data (k x G per permutation instead of p x n_frames).
    def _prepare(self):
        if hasattr(self, "_D"):
            return
        from scipy import sparse

        p = self.X.shape[1]
        self._fixed = [j for j in range(p) if j not in set(self.columns)]
        live = np.flatnonzero(self.codes >= 0)
        G = self.n_groups
        self._D = sparse.csr_matrix((np.ones(live.size), (self.codes[live], live)),
                                    shape=(G, self.X.shape[0]))
        self._counts = np.asarray(self._D.sum(axis=1)).ravel()
        F = self.X[:, self._fixed]
        self._F = F
        if F.shape[1]:
            Q, R = np.linalg.qr(F)
            if np.any(np.abs(np.diag(R)) <= 1e-10 * np.maximum(np.linalg.norm(F, axis=0),
                                                                  1e-300)):
                raise _SingularDesign()
            self._QF = Q                                   # orthonormal basis of span(F)
            self._DQ = np.asarray(self._D @ Q)             # (G, f): group sums of the basis
        else:
            self._QF = self._DQ = None

    def basis(self, perm, c):
        """``(C, v)``: with ``T, base = reduce(y)``: ``u = C @ T``, effect ``v' u``, var ``|v|^2``.

        ``C = L^-1 V[perm]'`` with ``L L'`` the Cholesky factor of the
        column-scaled ``(M_F P)'(M_F P)``; the residual sum of squares of the
        permuted model is ``base - |u|^2``. The contrast must be zero on the
        fixed columns (it is, when the permuted columns are its non-zero ones).
        """
        self._prepare()
        c = np.asarray(c, dtype=np.float64)
        if np.any(c[self._fixed] != 0):
            raise DataError(
                "Permutation max-T permutes the contrast's non-zero columns; the contrast has "
                f"weight on fixed columns {[j for j in self._fixed if c[j] != 0]}."
            )
        perm = np.arange(self.n_groups) if perm is None else perm
        Vp = self.V[perm]
        PP = Vp.T @ (self._counts[:, None] * Vp)
        if self._DQ is not None:
            A = Vp.T @ self._DQ                       # P'Q_F
            PP = PP - A @ A.T                         # (M_F P)'(M_F P)
        d = np.sqrt(np.clip(np.diag(PP), 0.0, None))
        if not np.all(d > 1e-10 * np.sqrt(self._counts.sum())):
            raise _SingularDesign()
        try:
            L = np.linalg.cholesky(PP / np.outer(d, d))
        except np.linalg.LinAlgError:
            raise _SingularDesign() from None
        if np.min(np.abs(np.diag(L))) < 1e-7:
            raise _SingularDesign()
        C = solve_triangular(L, Vp.T / d[:, None], lower=True)
        v = solve_triangular(L, c[self.columns] / d, lower=True)
        return C, v

    def bases(self, perms, c):
        """:meth:`basis` for a stack of permutations at once: ``C`` (n, k, G), ``v`` (n, k).

        Raises ``_SingularDesign`` if any permuted design is singular (the caller
        then draws them one by one).
        """
        self._prepare()
        c = np.asarray(c, dtype=np.float64)
        if np.any(c[self._fixed] != 0):
            return None
        Vp = self.V[perms]                                         # (n, G, k)
        PP = np.einsum("ngk,g,ngl->nkl", Vp, self._counts, Vp)
        if self._DQ is not None:
            A = np.einsum("ngk,gf->nkf", Vp, self._DQ)
            PP = PP - A @ np.swapaxes(A, 1, 2)
        d = np.sqrt(np.clip(np.einsum("nkk->nk", PP), 0.0, None))
        if not np.all(d > 1e-10 * np.sqrt(self._counts.sum())):
            raise _SingularDesign()
        try:
            L = np.linalg.cholesky(PP / (d[:, :, None] * d[:, None, :]))
        except np.linalg.LinAlgError:
            raise _SingularDesign() from None
        if np.min(np.abs(np.einsum("nkk->nk", L))) < 1e-7:
            raise _SingularDesign()
        C = np.linalg.solve(L, np.swapaxes(Vp, 1, 2) / d[:, :, None])
        v = np.linalg.solve(L, (c[self.columns][None, :] / d)[:, :, None])[:, :, 0]
        return C, v

    def reduce(self, y):
        """``(T, base)``: group sums of ``M_F y`` (G x units) and ``|M_F y|^2`` per unit."""
        self._prepare()
        yy = np.einsum("ij,ij->j", y, y)
        S = np.asarray(self._D @ y)
        if self._QF is None:
            return S, yy
        Z = self._QF.T @ y                            # (f, units)
        return S - self._DQ @ Z, yy - np.einsum("ij,ij->j", Z, Z)


class DesignBasis:
    """:meth:`GroupShuffler.basis`/``reduce`` for any design function (QR of each design)."""

    def __init__(self, design_fn):
        self.design_fn = design_fn

    def basis(self, perm, c):
        Q, w = _ols_t_parts(self.design_fn(perm), c)
        return Q.T, w

    @staticmethod
    def reduce(y):
        return y, np.einsum("ij,ij->j", y, y)


class _SingularDesign(DataError):
    """A (permuted) design that is rank deficient."""

    def __init__(self):
        super().__init__("The design is rank deficient (two regressors are collinear); drop a "
                         "redundant regressor.")


def _ols_t_parts(X, c):
    """Orthonormal basis Q of X and w with effect = w'Q'y, unscaled var = |w|^2.

    Raises ``_SingularDesign`` for a rank-deficient ``X`` (relative to its column norms).
    """
    Q, R = np.linalg.qr(X)
    scale = np.linalg.norm(X, axis=0)
    if np.any(np.abs(np.diag(R)) <= 1e-7 * np.maximum(scale, 1e-300)):
        raise _SingularDesign()
    w = np.linalg.solve(R.T, c)
    return Q, w


def _draw_basis(basis, c, ng, rng, tries=100):
    """A uniformly drawn group permutation whose design is of full rank, and its basis.

    Permutations that make the design singular (e.g. a permuted column that
    coincides with a fixed one) carry no test statistic; they are redrawn, so
    the null is the permutation distribution conditional on an estimable
    contrast (such permutations are rare: the count is logged).
    """
    for attempt in range(tries):
        try:
            return basis.basis(rng.permutation(ng), c), attempt
        except _SingularDesign:
            continue
    raise DataError(
        f"{tries} random permutations of the {ng} groups all gave rank-deficient designs; the "
        "groups cannot be exchanged with this design (too few groups per condition?)."
    )


def max_t_null(runs, c, *, n_perm, two_sided, rng, chunk_size=None, verbose=0):
    """Core of the max-T test over runs.

    Parameters
    ----------
    runs : list of (Y, basis, n_groups, dof)
        ``basis`` has ``basis(perm, c) -> (C, v)`` and ``reduce(y) -> (T, base)``
        (see :class:`GroupShuffler`, :class:`DesignBasis`): for a group
        permutation ``perm`` (``None`` = observed design), ``u = C @ T`` holds the
        data's coordinates in an orthonormal basis of the (permuted part of the)
        design, the effect is ``v' u``, its unscaled variance ``|v|^2`` and the
        residual sum of squares ``base - |u|^2``.
    c : ndarray of shape (p,)

    Returns
    -------
    stat : ndarray (n_units,), null_max : ndarray (n_perm,)

    Notes
    -----
    All permutations of a run are stacked into one (n_perm * k, m) matrix, so
    each data sub-block costs one matrix product with its reduction ``T``
    (boxcar designs: k permuted columns, m groups; otherwise k = p columns,
    m = n_frames).
    """
    n_units = runs[0][0].shape[1]
    stacks = []
    p = None
    for Y, basis, ng, dof in runs:
        C0, v0 = basis.basis(None, c)
        p = C0.shape[0]
        Call = np.empty((n_perm * p, C0.shape[1]))
        V = np.empty((n_perm, p))
        redrawn = 0
        batched = None
        if hasattr(basis, "bases"):
            perms = np.stack([rng.permutation(ng) for _ in range(n_perm)])
            try:
                batched = basis.bases(perms, c)
            except _SingularDesign:
                # draw again one by one, redrawing the singular ones: same generator state
                # for every run and contrast is not needed, only uniform draws
                batched = None
        if batched is not None:
            Call[:] = batched[0].reshape(n_perm * p, -1)
            V[:] = batched[1]
        else:
            for k in range(n_perm):
                (Ck, vk), extra = _draw_basis(basis, c, ng, rng)
                redrawn += extra
                Call[k * p:(k + 1) * p] = Ck
                V[k] = vk
        if redrawn:
            logger.info("permutation max-T: %d of %d permutations gave a rank-deficient design "
                        "and were redrawn", redrawn, n_perm)
        stacks.append((basis, C0, v0, Call, V, dof))
    null_max = np.full(n_perm, -np.inf)
    stat = np.empty(n_units)
    # the blocks of all runs are held together: they share one block's memory budget
    total = sum(int(Y.shape[0]) for Y, *_ in runs)
    block = min(column_block(Y, total, n_units, chunk_size) for (Y, *_) in runs)
    width = int(max(16, min(4096, (16 * 2 ** 20) // (8 * n_perm * p))))
    t0 = time.perf_counter()
    for start in range(0, n_units, block):
        stop = min(start + block, n_units)
        Ybs = [np.asarray(Y[:, start:stop]) for Y, *_ in runs]
        for a in range(0, stop - start, width):
            b = min(a + width, stop - start)
            eff_o = var_o = 0.0
            eff = var = 0.0
            for Yb, (basis, C0, v0, Call, V, dof) in zip(Ybs, stacks):
                y = np.asarray(Yb[:, a:b], dtype=np.float64)
                if not np.isfinite(y).all():
                    raise DataError(
                        "Y has NaN or infinite values; clean them before a permutation test."
                    )
                yy = np.einsum("ij,ij->j", y, y)
                # rounding level of an exact fit's effect (see GLMResults._snap): effects of
                # units with no residual below it are 0, so only real effects become +-inf
                tol = 64.0 * _EPS * y.shape[0] ** 1.5 * np.abs(y).max(axis=0)
                T, base = basis.reduce(y)
                Z0 = C0 @ T
                rss0 = base - np.einsum("ij,ij->j", Z0, Z0)
                # no residual (a constant unit, or an exact fit): rss is rounding noise
                rss0 = np.where(rss0 > 1e-12 * yy, rss0, 0.0)
                e0 = v0 @ Z0
                e0 = np.where((rss0 == 0) & (np.abs(e0) <= tol * np.linalg.norm(v0)), 0.0, e0)
                eff_o = eff_o + e0
                var_o = var_o + (v0 @ v0) * rss0 / dof
                Z = (Call @ T).reshape(n_perm, p, -1)
                rss = base[None] - np.einsum("mpc,mpc->mc", Z, Z)
                rss = np.where(rss > 1e-12 * yy[None], rss, 0.0)
                e = np.einsum("mp,mpc->mc", V, Z)
                small = np.abs(e) <= np.linalg.norm(V, axis=1)[:, None] * tol[None]
                eff = eff + np.where((rss == 0) & small, 0.0, e)
                var = var + (V * V).sum(1)[:, None] * rss / dof
            # zero variance: 0 for no effect, +-inf for an effect known without error
            stat[start + a:start + b] = ratio_stat(eff_o, var_o)
            tp = ratio_stat(eff, var)
            if two_sided:
                tp = np.abs(tp)
            np.maximum(null_max, tp.max(axis=1), out=null_max)
        logger.debug("permutation max-T: %d/%d units (%.1f s)", stop, n_units,
                     time.perf_counter() - t0)
    return stat, null_max


def permutation_max_t(Y, design_matrix, contrast_def, *, groups, columns=None,
                      n_permutations=1000, two_sided=True, random_state=None, units=None,
                      chunk_size=None, verbose=0, n_perm=None):
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
    n_permutations : int, default=1000
        Permutations (``n_perm`` is its old name).
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
    n_perm = check_positive_int("n_permutations", renamed(
        "n_perm", n_perm, "n_permutations", n_permutations, default=1000))
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
        runs.append((y, shuffler, shuffler.n_groups, float(n - len(names))))
    stat, null_max = max_t_null(runs, c, n_perm=int(n_perm), two_sided=two_sided, rng=rng,
                                chunk_size=chunk_size, verbose=verbose)
    dof = sum(r[3] for r in runs)
    return PermutationResult(stat, null_max, two_sided=two_sided, contrast=cname, units=units,
                             dof=dof)
