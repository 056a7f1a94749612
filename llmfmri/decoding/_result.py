"""DecodingResult: what identification and decoders report."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["DecodingResult", "confusion_table", "permutation_p"]


def permutation_p(observed, null):
    """``(1 + #{null >= observed}) / (n + 1)`` (NaN without permutations)."""
    null = np.asarray(null, dtype=float)
    if null.size == 0:
        return float("nan")
    return float((1.0 + np.sum(null >= observed - 1e-12)) / (null.size + 1.0))


def confusion_table(true, predicted, classes):
    """Counts of (true, predicted), rows and columns in ``classes`` order (+ ``"none"``)."""
    pred = pd.Series(predicted, dtype=object).fillna("none")
    cols = list(classes) + (["none"] if (pred == "none").any() else [])
    table = pd.crosstab(pd.Series(true, dtype=object, name="true"),
                        pd.Series(pred.to_numpy(), dtype=object, name="predicted"))
    return table.reindex(index=list(classes), columns=cols, fill_value=0).astype(int)


@dataclass(frozen=True, eq=False)
class DecodingResult:
    """Held-out decoding or identification: predictions, accuracy, chance and permutation p.

    Attributes
    ----------
    method : {"identification", "decoder"}
    scoring : str
        The score tested (``"accuracy"`` for identification).
    score : float
        The tested score: pooled accuracy of the held-out predictions
        (identification) or the mean cross-validated score (decoder, as
        ``sklearn.model_selection.permutation_test_score`` reports it).
    accuracy : float
        Share of held-out samples (blocks or prompts) predicted correctly.
    chance : float
        ``1 / n_classes``.
    null : ndarray of shape (n_permutations,)
        The score under permuted labels (empty without permutations).
    p_value : float
        ``(1 + #{null >= score}) / (n_permutations + 1)``; NaN without
        permutations.
    cv_scores : pandas.Series
        Score of each fold, indexed by the held-out run (or fold).
    predictions : pandas.DataFrame
        One row per held-out sample: ``fold``, ``run``, its id, ``true``,
        ``predicted``, ``correct`` (and the score of each class for
        identification).
    confusion : pandas.DataFrame
        Counts, rows = true class, columns = predicted class.
    classes : list of str
    networks : dict or None
        Identification: held-out run -> {task: Network fitted without it}.
    """

    method: str
    scoring: str
    score: float
    accuracy: float
    chance: float
    null: np.ndarray = field(repr=False)
    p_value: float
    cv_scores: pd.Series = field(repr=False)
    predictions: pd.DataFrame = field(repr=False)
    confusion: pd.DataFrame = field(repr=False)
    classes: list
    networks: dict | None = field(default=None, repr=False)

    @property
    def n_permutations(self):
        """Number of permutations behind :attr:`null`."""
        return int(np.asarray(self.null).size)

    @property
    def chance_empirical(self):
        """Mean score under permuted labels (NaN without permutations)."""
        return float(np.mean(self.null)) if self.n_permutations else float("nan")

    def summary(self):
        """The headline numbers as a one-row DataFrame."""
        return pd.DataFrame([{
            "method": self.method, "scoring": self.scoring, "score": self.score,
            "accuracy": self.accuracy, "chance": self.chance,
            "chance_empirical": self.chance_empirical, "p_value": self.p_value,
            "n_permutations": self.n_permutations, "n_samples": len(self.predictions),
            "n_classes": len(self.classes)}])

    def to_frame(self):
        """The predictions table (a copy)."""
        return self.predictions.copy()
