"""Lesions: edit chosen units while the model runs, against matched controls, and measure it.

A lesion sets chosen coordinates of site outputs (a network's units) to zero,
to their mean, adds noise, scales them, or resamples them from another
condition, at every forward pass -- every prompt position and every generated
token -- through the recording hooks (:func:`llmfmri.intervene`); the model is
restored when the block exits, also after an error.

- lesions: :func:`lesion`, :class:`Lesion`, :data:`STRATEGIES`
- controls: :func:`random_controls` (same count in every layer and site,
  optionally magnitude-matched), :func:`least_selective`,
  :func:`compare_to_controls`, :func:`unit_magnitude`
- behaviour: :func:`score_texts` (perplexity, sliding window),
  :func:`score_answers` (greedy answers vs gold), :func:`score_gold` (gold-answer
  log-probability, forced choice), :func:`score_recording` (from a
  recording, no torch), :func:`accuracy_table` (Wilson),
  :func:`perplexity_table` (bootstrap over items), :func:`score_behaviour`,
  :func:`behaviour_table`
- contrasts: :func:`lesion_contrast` (paired, prompt-level GLM),
  :func:`dissociation_table`
- the localizer study: :func:`localizer_map`, :func:`localizer_study`

Weight lesions edit the weights instead (restored bit for bit when the block exits):

- matrices: :data:`MATRIX_KINDS`, :func:`matrix_names`, :func:`matrix_shapes`
- importance and regions: :func:`parameter_importance` (``|theta * dL/dtheta|`` per
  text set), :class:`ParameterImportance`, :class:`WeightRegion` (top / bottom /
  random / specific, unions and intersections), :func:`random_regions`,
  :func:`load_region`, :func:`load_importance`
- weight lesions: :func:`weight_lesion`, :class:`WeightLesion` (zero, scale, noise)
- dimensions: :func:`dimension_region`, :func:`dimension_lesion`,
  :func:`dimension_scan`, :func:`compare_dimensions`, :func:`dimension_profile`,
  :func:`random_dimensions` (the control dimensions)
- low-rank truncation (LASER): :func:`truncate`, :class:`Truncation`,
  :class:`SVDCache`, :func:`truncation_search`; in-context recall:
  :func:`recall_items`, :func:`score_recall`, :func:`recall_table`
- freezing a region during further training: :func:`further_training`,
  :func:`forgetting_study`
- studies against controls: :func:`weight_lesion_study`, :func:`core_region_study`
- parallel text offline: :func:`catalog_texts`, :func:`catalog_languages`

torch is imported inside the functions that run the model only, so
``import llmfmri.lesions`` stays light.

Examples
--------
>>> import llmfmri.lesions as ls
>>> from llmfmri.models import tiny_model
>>> model = tiny_model("llama")
>>> with ls.lesion(model, {"layers.1.resid_post": [0, 5, 9]}, strategy="zero") as les:
...     les.n_units
3
"""

from ._behaviour import (SCORE_COLUMNS, accuracy_table, bootstrap_perplexity, match_answer,
                         perplexity_table, score_recording, wilson_interval)
from ._contrast import DissociationResult, LesionContrast, dissociation_table, lesion_contrast
from ._controls import (ALTERNATIVES, compare_to_controls, least_selective, random_controls,
                        unit_magnitude)
from ._lesion import STRATEGIES, Lesion, lesion
from ._scoring import context_limit, load_texts, score_answers, score_gold, score_texts
from ._study import (DEFAULT_TASKS, LOCALIZER_STATISTICS, LesionStudy, behaviour_table,
                     compare_conditions, default_text_sets, localizer_map, localizer_study,
                     score_behaviour)
from ._units import LesionUnits
from ._catalogs import CATALOG_DOMAINS, catalog_languages, catalog_texts
from ._dimensions import (DIMENSION_SPACES, DimensionScan, compare_dimensions, dimension_lesion,
                          dimension_profile, dimension_region, dimension_scan,
                          random_dimensions)
from ._freeze import ForgettingStudy, TrainingRun, forgetting_study, further_training
from ._importance import ParameterImportance, load_importance, parameter_importance
from ._recall import (GENERIC_TOKENS, IOI_NAMES, IOI_TEMPLATES, recall_items, recall_table,
                      score_recall)
from ._regions import REGION_RULES, WeightRegion, load_region, random_regions
from ._truncation import (LASER_RHOS, SVDCache, Truncation, TruncationSearch, truncate,
                          truncation_rank, truncation_search)
from ._weight_study import WeightLesionStudy, core_region_study, weight_lesion_study
from ._weights import (MATRIX_KINDS, WEIGHT_STRATEGIES, WeightLesion, matrix_names,
                       matrix_shapes, weight_lesion)

__all__ = [
    "lesion",
    "Lesion",
    "LesionUnits",
    "STRATEGIES",
    "random_controls",
    "least_selective",
    "unit_magnitude",
    "compare_to_controls",
    "ALTERNATIVES",
    "score_texts",
    "score_answers",
    "score_gold",
    "score_recording",
    "load_texts",
    "context_limit",
    "match_answer",
    "accuracy_table",
    "perplexity_table",
    "wilson_interval",
    "bootstrap_perplexity",
    "SCORE_COLUMNS",
    "score_behaviour",
    "behaviour_table",
    "compare_conditions",
    "lesion_contrast",
    "LesionContrast",
    "dissociation_table",
    "DissociationResult",
    "localizer_map",
    "localizer_study",
    "LesionStudy",
    "LOCALIZER_STATISTICS",
    "DEFAULT_TASKS",
    "default_text_sets",
    # weight lesions
    "MATRIX_KINDS",
    "WEIGHT_STRATEGIES",
    "matrix_names",
    "matrix_shapes",
    "weight_lesion",
    "WeightLesion",
    "parameter_importance",
    "ParameterImportance",
    "load_importance",
    "WeightRegion",
    "REGION_RULES",
    "random_regions",
    "load_region",
    "DIMENSION_SPACES",
    "dimension_region",
    "dimension_lesion",
    "dimension_profile",
    "dimension_scan",
    "DimensionScan",
    "compare_dimensions",
    "random_dimensions",
    "truncate",
    "Truncation",
    "truncation_rank",
    "SVDCache",
    "truncation_search",
    "TruncationSearch",
    "LASER_RHOS",
    "IOI_NAMES",
    "IOI_TEMPLATES",
    "GENERIC_TOKENS",
    "recall_items",
    "score_recall",
    "recall_table",
    "further_training",
    "TrainingRun",
    "forgetting_study",
    "ForgettingStudy",
    "weight_lesion_study",
    "WeightLesionStudy",
    "core_region_study",
    "catalog_texts",
    "catalog_languages",
    "CATALOG_DOMAINS",
]
