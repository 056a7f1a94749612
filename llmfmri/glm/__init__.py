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

from ..exceptions import ConstantUnitWarning, ContrastError, DataError, PerfectFitWarning
from ._contrast import (
    Contrast,
    compute_contrast,
    compute_fixed_effects,
    contrast_matrix,
    expression_to_contrast_vector,
)
from ._correct import PermutationResult, correct, permutation_max_t
from ._data import RunView, as_runs
from ._engine import GLMResults, run_glm
from ._first_level import FirstLevelGLM
from ._io import contrast_table, save_glm_to_bids
from ._mixed import MixedGLM, fit_mixed
from ._second_level import PromptSummary, SecondLevelGLM, summarize_prompts
from ._stats import z_from_t
from ._statsmodels import StatsmodelsGLM, fit_statsmodels
from ._unitmap import INFERENCES, UnitMap

__all__ = [
    "run_glm",
    "GLMResults",
    "compute_contrast",
    "Contrast",
    "ContrastError",
    "ConstantUnitWarning",
    "PerfectFitWarning",
    "DataError",
    "compute_fixed_effects",
    "contrast_matrix",
    "expression_to_contrast_vector",
    "FirstLevelGLM",
    "save_glm_to_bids",
    "contrast_table",
    "SecondLevelGLM",
    "summarize_prompts",
    "PromptSummary",
    "UnitMap",
    "INFERENCES",
    "correct",
    "permutation_max_t",
    "PermutationResult",
    "fit_statsmodels",
    "fit_mixed",
    "z_from_t",
    "MixedGLM",
    "as_runs",
    "RunView",
    "StatsmodelsGLM",
]
