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
]
