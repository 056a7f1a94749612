"""Mass-univariate GLMs on (n_frames, n_units) recordings: the fMRI toolkit for LLM units.

Vocabulary follows nilearn: ``design_matrix``, ``noise_model``, ``compute_contrast``,
``stat_type``, ``output_type``, ``z_score``, ``effect_size``. The fast path
(:func:`run_glm`) is vectorised over units and chunked over an on-disk array;
a statsmodels backend (:func:`fit_statsmodels`) fits any statsmodels model per
unit and is the oracle the fast path is tested against. Nothing here imports
torch or matplotlib.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import llmfmri.glm as g
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"task": np.tile([0.0] * 8 + [1.0] * 8, 6), "constant": 1.0})
>>> Y = rng.standard_normal((96, 4)); Y[:, 1] += X["task"].to_numpy()
>>> res = g.run_glm(Y, X, noise_model="ar1")
>>> con = g.compute_contrast(res, "task")
>>> con.stat_type, con.z_score().shape
('t', (4,))
"""

from ._contrast import (
    Contrast,
    ContrastError,
    compute_fixed_effects,
    contrast_matrix,
    expression_to_contrast_vector,
)
from ._correct import PermutationResult, correct, permutation_max_t
from ._engine import ConstantUnitWarning, DataError, GLMResults, run_glm
from ._first_level import FirstLevelGLM
from ._second_level import SecondLevelGLM, summarize_prompts
from ._statsmodels import StatsmodelsGLM, fit_statsmodels
from ._unitmap import UnitMap

__all__ = [
    "run_glm",
    "GLMResults",
    "compute_contrast",
    "Contrast",
    "ContrastError",
    "ConstantUnitWarning",
    "DataError",
    "compute_fixed_effects",
    "contrast_matrix",
    "expression_to_contrast_vector",
    "FirstLevelGLM",
    "SecondLevelGLM",
    "summarize_prompts",
    "UnitMap",
    "correct",
    "permutation_max_t",
    "PermutationResult",
    "fit_statsmodels",
    "StatsmodelsGLM",
]


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
