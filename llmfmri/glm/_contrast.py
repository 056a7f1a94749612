"""Contrast definitions (string expressions, vectors, matrices) and the Contrast result."""

from __future__ import annotations

import ast
import re

import numpy as np

from ..exceptions import ConstantUnitWarning, ContrastError, PerfectFitWarning
from .._utils import check_option, did_you_mean, warn
from ._stats import f_sf, ratio_stat, t_sf, z_from_f, z_from_t

__all__ = ["compute_contrast", "Contrast", "expression_to_contrast_vector", "contrast_matrix",
           "compute_fixed_effects"]


_BACKTICK = re.compile(r"`([^`]*)`")


def expression_to_contrast_vector(expression, columns):
    """Turn a linear expression over design columns into a contrast vector.

    Parameters
    ----------
    expression : str
        E.g. ``"medical_imaging - control"``, ``"2 * a - (b + c)"``, ``"(a + b) / 2"``.
        Names that are not Python identifiers go in backticks: ``"`my cond` - b"``.
        A string equal to a column name is that column.
    columns : list of str
        Design matrix columns.

    Returns
    -------
    vector : ndarray of shape (n_columns,)

    Examples
    --------
    >>> from llmfmri.glm import expression_to_contrast_vector
    >>> expression_to_contrast_vector("a - b", ["a", "b", "constant"]).tolist()
    [1.0, -1.0, 0.0]
    >>> expression_to_contrast_vector("(a + b) / 2", ["a", "b"]).tolist()
    [0.5, 0.5]
    """
    columns = [str(c) for c in columns]
    if not isinstance(expression, str):
        raise TypeError(
            f"A contrast expression must be a string, but got {type(expression).__name__}."
        )
    if expression.strip() in columns:
        vec = np.zeros(len(columns))
        vec[columns.index(expression.strip())] = 1.0
        return vec
    quoted = {}

    def _sub(m):
        key = f"__q{len(quoted)}__"
        quoted[key] = m.group(1)
        return key

    source = _BACKTICK.sub(_sub, expression)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ContrastError(
            f"Cannot parse the contrast expression {expression!r}: {exc.msg}. Write a linear "
            "combination of design columns, e.g. 'medical_imaging - control'; put names "
            "with spaces or symbols in backticks."
        ) from exc
    index = {c: i for i, c in enumerate(columns)}

    def ev(node):
        # returns (vector, scalar) where exactly one is not None
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return None, float(node.value)
        if isinstance(node, ast.Name):
            name = quoted.get(node.id, node.id)
            if name not in index:
                raise ContrastError(
                    f"The contrast {expression!r} names {name!r}, which is not a column of the "
                    f"design matrix; columns are {columns}." + did_you_mean(name, columns)
                )
            v = np.zeros(len(columns))
            v[index[name]] = 1.0
            return v, None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v, s = ev(node.operand)
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return (None if v is None else sign * v), (None if s is None else sign * s)
        if isinstance(node, ast.BinOp):
            lv, ls = ev(node.left)
            rv, rs = ev(node.right)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
                if lv is None or rv is None:
                    raise ContrastError(
                        f"The contrast {expression!r} adds a constant to a regressor; a contrast "
                        "is a linear combination of columns without a constant term."
                    )
                return lv + sign * rv, None
            if isinstance(node.op, ast.Mult):
                if lv is not None and rv is not None:
                    raise ContrastError(
                        f"The contrast {expression!r} multiplies two regressors; a contrast must "
                        "be linear in the columns."
                    )
                if lv is None and rv is None:
                    return None, ls * rs
                return (lv * rs, None) if lv is not None else (rv * ls, None)
            if isinstance(node.op, ast.Div):
                if rv is not None:
                    raise ContrastError(
                        f"The contrast {expression!r} divides by a regressor; only division by a "
                        "number is linear."
                    )
                if rs == 0:
                    raise ContrastError(f"The contrast {expression!r} divides by zero.")
                return (lv / rs, None) if lv is not None else (None, ls / rs)
        raise ContrastError(
            f"Unsupported syntax in the contrast {expression!r}: only column names, numbers, "
            "+, -, * and / are allowed."
        )

    vec, scalar = ev(tree)
    if vec is None:
        raise ContrastError(
            f"The contrast {expression!r} names no design column; write e.g. 'a - b'."
        )
    return vec


def contrast_matrix(contrast_def, columns, stat_type=None):
    """Normalise a contrast definition to a matrix.

    Parameters
    ----------
    contrast_def : str, list of str, dict, array of shape (p,) or (q, p)
        A string expression (t), a list of expressions (F, one row each), a dict
        ``{column: weight}`` (t), a vector (t) or a matrix (F).
    columns : list of str
        Design matrix columns (``p`` of them).
    stat_type : {None, "t", "F"}
        ``None`` infers ``"t"`` for one row and ``"F"`` for several.

    Returns
    -------
    matrix : ndarray of shape (q, p)
    stat_type : str
    name : str
        A readable name of the contrast.
    """
    columns = [str(c) for c in columns]
    p = len(columns)
    if stat_type is not None:
        check_option("stat_type", stat_type, ("t", "F"), error=ContrastError)
    if isinstance(contrast_def, str):
        C = expression_to_contrast_vector(contrast_def, columns)[None, :]
        name = contrast_def.strip()
    elif isinstance(contrast_def, dict):
        unknown = [k for k in contrast_def if str(k) not in columns]
        if unknown:
            raise ContrastError(
                f"The contrast names {unknown[0]!r}, which is not a design column; columns are "
                f"{columns}." + did_you_mean(str(unknown[0]), columns)
            )
        C = np.zeros((1, p))
        for k, w in contrast_def.items():
            C[0, columns.index(str(k))] = float(w)
        name = " + ".join(f"{w:g}*{k}" for k, w in contrast_def.items())
    elif isinstance(contrast_def, (list, tuple)) and contrast_def and all(
            isinstance(c, str) for c in contrast_def):
        C = np.vstack([expression_to_contrast_vector(c, columns) for c in contrast_def])
        name = "; ".join(c.strip() for c in contrast_def)
    else:
        try:
            C = np.atleast_2d(np.asarray(contrast_def, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ContrastError(
                "contrast_def must be a string expression, a list of expressions, a dict of "
                f"column weights, or a numeric vector/matrix, but got {contrast_def!r}."
            ) from exc
        if C.ndim != 2 or C.shape[1] != p:
            raise ContrastError(
                f"A contrast vector or matrix must have {p} columns (one per design column "
                f"{columns}), but got shape {np.shape(contrast_def)}."
            )
        name = "[" + ", ".join(" ".join(f"{v:g}" for v in row) for row in C) + "]"
    if not np.isfinite(C).all():
        raise ContrastError(f"The contrast {name!r} has NaN or infinite weights.")
    if not np.any(C):
        raise ContrastError(f"The contrast {name!r} is all zeros; it tests nothing.")
    if stat_type is None:
        stat_type = "t" if C.shape[0] == 1 else "F"
    if stat_type == "t" and C.shape[0] > 1:
        raise ContrastError(
            f"A t contrast has one row, but {name!r} has {C.shape[0]}; use stat_type='F' "
            "or a single expression."
        )
    if C.shape[0] > 1 and np.linalg.matrix_rank(C) < C.shape[0]:
        raise ContrastError(
            f"The rows of the F contrast {name!r} are linearly dependent (rank "
            f"{np.linalg.matrix_rank(C)} < {C.shape[0]} rows); drop the redundant rows."
        )
    return C, stat_type, name


class Contrast:
    """Effect, variance and statistics of one contrast on every unit (nilearn's vocabulary).

    Parameters
    ----------
    effect : array of shape (n_units,) for t, (q, n_units) for F
        Contrast estimates ``C @ beta``.
    variance : array of shape (n_units,) for t, (q, q, n_units) for F
        Their (co)variance.
    dof : float
        Residual degrees of freedom (``inf`` for a normal reference distribution).
    stat_type : {"t", "F"}
    name : str, optional
        The contrast, e.g. ``"medical_imaging - control"``.

    Notes
    -----
    Units whose variance is exactly 0 are either constant (no variance at
    all) or fitted exactly by the design (no residual variance); the result
    has no NaN either way:

    * a zero effect (every contrast orthogonal to the constant of a constant
      unit; a condition an exact fit does not depend on) gets a statistic and
      a z score of 0, a one-sided p of 0.5 for t and a p of 1 for F and
      two-sided t: no effect;
    * a non-zero effect is known without error, the strongest effect there
      is: the statistic is ``+inf`` (``-inf`` for a negative t), the p value 0
      (1 one-sided for a negative t), and the z score the largest finite z of
      the transform (that of the largest double: about 232 for 38 degrees of
      freedom), so that z maps stay finite and rank it first.

    ``run_glm`` warns about such units (:class:`~llmfmri.exceptions.PerfectFitWarning`,
    :class:`~llmfmri.exceptions.ConstantUnitWarning`) and sets effects that
    are rounding noise of an exact fit to exactly 0.

    ``p_value()`` is one-sided (upper tail) for t, like nilearn, so that
    ``z_score()`` keeps the sign of the effect; ``p_value(two_sided=True)``
    gives statsmodels' two-sided p.
    """

    def __init__(self, effect, variance, dof, stat_type="t", *, name=None):
        check_option("stat_type", stat_type, ("t", "F"), error=ContrastError)
        effect = np.asarray(effect, dtype=np.float64)
        variance = np.asarray(variance, dtype=np.float64)
        if stat_type == "t":
            effect = effect.reshape(-1)
            variance = variance.reshape(-1)
            if effect.shape != variance.shape:
                raise ContrastError(
                    f"effect and variance must have the same shape, but got {effect.shape} "
                    f"and {variance.shape}."
                )
        else:
            if effect.ndim == 1:
                effect = effect[None, :]
            q, n = effect.shape
            if variance.ndim == 1 and q == 1:
                variance = variance[None, None, :]
            if variance.shape != (q, q, n):
                raise ContrastError(
                    f"An F contrast with effect of shape {effect.shape} needs variance of shape "
                    f"{(q, q, n)}, but got {variance.shape}."
                )
        self.effect = effect
        self.variance = variance
        self.dof = float(dof)
        self.stat_type = stat_type
        self.name = name
        self.dim = 1 if stat_type == "t" else effect.shape[0]
        self._stat = None

    def __repr__(self):
        return (f"Contrast({self.name!r}, stat_type={self.stat_type!r}, dim={self.dim}, "
                f"dof={self.dof:g}, n_units={self.n_units})")

    @property
    def n_units(self):
        """Number of units."""
        return self.effect.shape[-1]

    @property
    def zero_variance(self):
        """Boolean mask of units with zero variance (constant units and exact fits)."""
        if self.stat_type == "t":
            return self.variance == 0
        return np.all(self.variance.reshape(-1, self.n_units) == 0, axis=0)

    @property
    def zero_effect(self):
        """Boolean mask of units whose effect is exactly 0 (every row, for F)."""
        if self.stat_type == "t":
            return self.effect == 0
        return np.all(self.effect == 0, axis=0)

    @property
    def exact(self):
        """Boolean mask of units with a non-zero effect and zero variance (t = +-inf, p = 0)."""
        return self.zero_variance & ~self.zero_effect

    def effect_size(self):
        """Contrast estimate: shape (n_units,) for t, (q, n_units) for F."""
        return self.effect

    def effect_variance(self):
        """Variance of the estimate: (n_units,) for t, the diagonal (q, n_units) for F."""
        if self.stat_type == "t":
            return self.variance
        return np.einsum("iiu->iu", self.variance)

    def stat(self):
        """t or F statistic of shape (n_units,)."""
        if self._stat is None:
            if self.stat_type == "t":
                s = ratio_stat(self.effect, self.variance)
            else:
                zero = self.zero_variance
                V = np.moveaxis(self.variance, -1, 0).copy()  # (n, q, q)
                V[zero] = np.eye(self.dim)
                e = self.effect.T  # (n, q)
                sol = np.linalg.solve(V, e[..., None])[..., 0]
                s = np.einsum("nq,nq->n", e, sol) / self.dim
                s = np.where(zero, np.where(self.zero_effect, 0.0, np.inf), s)
            self._stat = s + 0.0
        return self._stat

    def p_value(self, two_sided=False):
        """p value: one-sided upper tail for t (``two_sided=True`` for both tails), upper for F.

        0 for an exact non-zero effect (1 one-sided for a negative t); 0.5
        one-sided, 1 two-sided and for F where the effect and its variance are
        both 0.
        """
        s = self.stat()
        none = self.zero_variance & self.zero_effect
        if self.stat_type == "t":
            p = 2.0 * t_sf(np.abs(s), self.dof) if two_sided else t_sf(s, self.dof)
            if two_sided:
                p = np.minimum(p, 1.0)
            return np.where(none, 1.0 if two_sided else 0.5, p)
        return np.where(none, 1.0, f_sf(s, self.dim, self.dof))

    def z_score(self):
        """z score with the same one-sided p value, finite for any statistic.

        0 where there is no effect and no variance; the largest finite z of
        the transform (signed) for an exact non-zero effect (see the class notes).
        """
        s = self.stat()
        if self.stat_type == "t":
            z = z_from_t(s, self.dof)
        else:
            z = z_from_f(s, self.dim, self.dof)
        z = np.where(self.zero_variance & self.zero_effect, 0.0, z)
        return z + 0.0  # no negative zeros

    # ------------------------------------------------------------ fixed effects
    def __add__(self, other):
        if not isinstance(other, Contrast):
            return NotImplemented
        if self.stat_type != other.stat_type or self.dim != other.dim:
            raise ContrastError(
                f"Cannot combine a {self.stat_type} contrast of dimension {self.dim} with a "
                f"{other.stat_type} contrast of dimension {other.dim}."
            )
        if self.n_units != other.n_units:
            raise ContrastError(
                f"Cannot combine contrasts over {self.n_units} and {other.n_units} units."
            )
        return Contrast(self.effect + other.effect, self.variance + other.variance,
                        self.dof + other.dof, self.stat_type, name=self.name)

    def __rmul__(self, scalar):
        scalar = float(scalar)
        return Contrast(self.effect * scalar, self.variance * scalar ** 2, self.dof,
                        self.stat_type, name=self.name)

    __mul__ = __rmul__

    def __truediv__(self, scalar):
        return self.__rmul__(1.0 / float(scalar))


def compute_fixed_effects(contrasts, *, precision_weighted=False):
    """Combine per-run contrasts into a fixed-effects contrast.

    Parameters
    ----------
    contrasts : list of Contrast
        The same contrast from independent runs.
    precision_weighted : bool, default=False
        ``False``: mean of the effects, variance ``sum(var) / n**2`` and
        ``dof = sum(dof)`` (nilearn's ``compute_fixed_effect_contrast``).
        ``True`` (t only): inverse-variance weighted mean, variance
        ``1 / sum(1 / var)``.

    Returns
    -------
    Contrast

    Notes
    -----
    With ``precision_weighted=True`` a run where a unit has zero variance
    counts as follows: with a zero effect (a constant unit) it carries no
    information and is left out for that unit (:class:`ConstantUnitWarning`);
    with a non-zero effect (an exact fit) its precision is infinite, so the
    unit's combined effect is the mean over such runs, with variance 0
    (``t = +-inf``, :class:`PerfectFitWarning`). Without weighting, variances
    add: a unit is exact across runs only if it is exact in every run.
    """
    contrasts = list(contrasts)
    if not contrasts:
        raise ContrastError("compute_fixed_effects needs at least one contrast.")
    if len(contrasts) == 1:
        return contrasts[0]
    if not precision_weighted:
        total = contrasts[0]
        for c in contrasts[1:]:
            total = total + c
        return total * (1.0 / len(contrasts))
    if any(c.stat_type != "t" for c in contrasts):
        raise ContrastError("precision_weighted fixed effects are defined for t contrasts only.")
    var = np.stack([c.variance for c in contrasts])
    eff = np.stack([c.effect for c in contrasts])
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(var > 0, 1.0 / var, 0.0)
        wsum = w.sum(axis=0)
        effect = np.where(wsum > 0, (w * eff).sum(axis=0) / wsum, 0.0)
        variance = np.where(wsum > 0, 1.0 / wsum, 0.0)
    exact = (var == 0) & (eff != 0)          # exact fits: infinite precision
    ignored = (var == 0) & (eff == 0)        # no variance and no effect: no information
    if exact.any():
        units = np.flatnonzero(exact.any(axis=0))
        n_exact = exact.sum(axis=0)[units]
        effect[units] = np.where(exact[:, units], eff[:, units], 0.0).sum(axis=0) / n_exact
        variance[units] = 0.0
        warn(f"{units.size} units (first columns {units[:5].tolist()}) are fitted exactly "
             "(zero residual variance, non-zero effect) in some runs; their precision there is "
             "infinite, so their combined effect is the mean over those runs, with variance 0 "
             "(t = +-inf, p = 0).", PerfectFitWarning)
    if (ignored & ~exact.any(axis=0)).any():
        units = np.flatnonzero((ignored & ~exact.any(axis=0)).any(axis=0))
        warn(f"{units.size} units (first columns {units[:5].tolist()}) have zero variance and "
             "zero effect in some runs (constant there, or fitted exactly with no effect); "
             "those runs carry no information on them and are left out.",
             ConstantUnitWarning)
    return Contrast(effect, variance, sum(c.dof for c in contrasts), "t",
                    name=contrasts[0].name)


def compute_contrast(results, contrast_def, stat_type=None, *, precision_weighted=False):
    """Compute a contrast from fitted GLM results.

    Parameters
    ----------
    results : GLMResults, StatsmodelsGLM, or a list of them (runs: fixed effects)
    contrast_def : str, list of str, dict, array of shape (p,) or (q, p)
        ``"medical_imaging - control"`` (t), ``["a", "b"]`` (F, one row per
        expression), ``{"a": 1, "b": -1}``, a vector (t) or a matrix (F).
    stat_type : {None, "t", "F"}
        Inferred from the number of rows by default.
    precision_weighted : bool, default=False
        For a list of runs: inverse-variance weighted fixed effects (t only).

    Returns
    -------
    Contrast
        ``.effect_size()``, ``.effect_variance()``, ``.stat()``,
        ``.p_value(two_sided=False)``, ``.z_score()``, ``.dof``.
    """
    if isinstance(results, (list, tuple)):
        if not results:
            raise ValueError("results is an empty list; pass fitted GLMResults.")
        return compute_fixed_effects([r.contrast(contrast_def, stat_type) for r in results],
                                     precision_weighted=precision_weighted)
    if not hasattr(results, "contrast"):
        raise TypeError(
            "results must be GLMResults (from run_glm), StatsmodelsGLM (from fit_statsmodels) "
            f"or a list of them, but got {type(results).__name__}. For a FirstLevelGLM use "
            "its compute_contrast method."
        )
    return results.contrast(contrast_def, stat_type)
