"""Checks on design matrices: finiteness and full column rank, with errors that name columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DesignMatrixError

__all__ = ["DesignMatrixError", "check_design_matrix"]

#: Relative tolerance on singular values of the column-normalised design below
#: which the design counts as rank deficient (condition number above 1e10).
_RANK_RTOL = 1e-10


def _as_frame(design_matrix, name):
    if isinstance(design_matrix, pd.DataFrame):
        df = design_matrix
    else:
        arr = np.asarray(design_matrix)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DesignMatrixError(
                f"{name} must be 2-D, of shape (n_frames, n_regressors), but got shape {arr.shape}."
            )
        df = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    if df.shape[1] == 0:
        raise DesignMatrixError(f"{name} has no columns; add at least one regressor.")
    if len(set(map(str, df.columns))) != df.shape[1]:
        dup = pd.Index(map(str, df.columns))
        raise DesignMatrixError(
            f"{name} has duplicated column names {sorted(set(dup[dup.duplicated()]))}; "
            "every regressor needs a unique name."
        )
    non_numeric = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise DesignMatrixError(
            f"{name} columns must be numeric, but {non_numeric[:5]} are not "
            f"(dtypes {[str(df[c].dtype) for c in non_numeric[:5]]})."
        )
    return df


def _format_relation(target, coefs, names):
    parts = []
    for k, (c, n) in enumerate(zip(coefs, names)):
        mag = abs(c)
        term = n if np.isclose(mag, 1.0, rtol=1e-6) else f"{mag:.4g}*{n}"
        if k == 0:
            parts.append(("-" if c < 0 else "") + term)
        else:
            parts.append((" - " if c < 0 else " + ") + term)
    return f"{target} = " + ("".join(parts) if parts else "0")


def collinear_groups(X, names, rtol=_RANK_RTOL):
    """Describe the linear dependencies among the columns of ``X``.

    Columns are taken in order; a column that lies in the span of the
    independent columns before it is reported as their combination.

    Parameters
    ----------
    X : ndarray of shape (n_frames, n_regressors)
    names : list of str
    rtol : float
        Singular values of the column-normalised matrix below ``rtol`` times the
        largest one count as zero.

    Returns
    -------
    rank : int
    relations : list of (list of str, str)
        For each dependent column, the columns involved and a readable
        relation such as ``"constant = a + b"``.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.design import collinear_groups
    >>> X = np.array([[1., 0, 1], [0, 1, 1], [1, 0, 1]])
    >>> collinear_groups(X, ["a", "b", "constant"])
    (2, [(['constant', 'a', 'b'], 'constant = a + b')])
    """
    X = np.asarray(X, dtype=np.float64)
    norms = np.sqrt((X * X).sum(axis=0))
    safe = np.where(norms > 0, norms, 1.0)
    Xn = X / safe
    s = np.linalg.svd(Xn, compute_uv=False)
    s_full = np.zeros(X.shape[1])
    s_full[: s.size] = s
    rank = int((s_full > rtol * max(s_full.max(), np.finfo(float).tiny)).sum())
    tol = max(1e-7, np.sqrt(rtol))
    if s_full.min() > tol:
        # a unit-norm column lies at least the smallest singular value away from the
        # span of the others, so no column can meet the residual test below
        return rank, []
    relations = []
    independent = []
    for j in range(X.shape[1]):
        if norms[j] == 0:
            relations.append(([names[j]], f"{names[j]} = 0 (zero on every frame)"))
            continue
        if independent:
            A = Xn[:, independent]
            coef, *_ = np.linalg.lstsq(A, Xn[:, j], rcond=None)
            resid = np.linalg.norm(Xn[:, j] - A @ coef)
            if resid <= tol:
                coef = coef * norms[j] / norms[independent]  # original column units
                big = np.abs(coef) > 1e-8 * np.abs(coef).max()
                cols = [names[independent[i]] for i in np.flatnonzero(big)]
                relations.append(([names[j]] + cols,
                                  _format_relation(names[j], coef[big], cols)))
                continue
        independent.append(j)
    return rank, relations


def check_design_matrix(design_matrix, *, name="design_matrix", n_frames=None):
    """Check that a design matrix is finite and of full column rank.

    Parameters
    ----------
    design_matrix : pandas.DataFrame or array of shape (n_frames, n_regressors)
    name : str
        How the design is called in error messages.
    n_frames : int, optional
        Expected number of rows.

    Returns
    -------
    design_matrix : pandas.DataFrame
        The design (array inputs get columns ``x0, x1, ...``).

    Raises
    ------
    DesignMatrixError
        If the design has NaN/inf values, the wrong number of rows, no residual
        degrees of freedom, or collinear columns (the message names them).

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.design import DesignMatrixError, check_design_matrix
    >>> X = pd.DataFrame({"a": [1., 0, 1, 0], "b": [0., 1, 0, 1], "constant": 1.0})
    >>> try:
    ...     check_design_matrix(X)
    ... except DesignMatrixError as err:
    ...     print(str(err)[:70])
    design_matrix is rank deficient (rank 2 < 3 columns): constant = a + b
    """
    df = _as_frame(design_matrix, name)
    X = df.to_numpy(dtype=np.float64)
    if n_frames is not None and X.shape[0] != n_frames:
        raise DesignMatrixError(
            f"{name} has {X.shape[0]} rows but the data have {n_frames} frames; "
            f"got {name} of shape {X.shape}. Build the design from this run's events "
            "(one row per frame)."
        )
    bad = ~np.isfinite(X)
    if bad.any():
        cols = [str(df.columns[j]) for j in np.flatnonzero(bad.any(axis=0))]
        rows = np.flatnonzero(bad.any(axis=1))
        raise DesignMatrixError(
            f"{name} has {int(bad.sum())} NaN or infinite values in columns {cols[:5]} "
            f"(first rows {rows[:5].tolist()}); fill or drop them before fitting."
        )
    n, p = X.shape
    if n <= p:
        shown = [str(c) for c in df.columns[:6]] + (["..."] if p > 6 else [])
        raise DesignMatrixError(
            f"{name} has {n} frames for {p} regressors ({', '.join(shown)}); a GLM needs "
            "more frames than regressors to leave residual degrees of freedom (at the second "
            "level: more samples than columns). Use fewer regressors (drift_model=None, fewer "
            "confounds) or more frames."
        )
    names = [str(c) for c in df.columns]
    rank, relations = collinear_groups(X, names)
    if rank < p or relations:
        involved = []
        for cols, _ in relations:
            involved += [c for c in cols if c not in involved]
        shown = "; ".join(rel for _, rel in relations[:3])
        raise DesignMatrixError(
            f"{name} is rank deficient (rank {rank} < {p} columns): {shown}. "
            f"Collinear columns: {involved}. Drop one of them (for example 'constant' "
            "when the conditions cover every frame, or per-prompt intercepts when each "
            "prompt belongs to a single condition)."
        )
    return df
