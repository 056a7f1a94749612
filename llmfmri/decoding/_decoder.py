"""Decoder: scikit-learn classifiers on prompt patterns, cross-validated over runs."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd

from .._utils import check_fraction, check_option, check_positive_int, check_random_state, \
    did_you_mean, logger, with_verbose
from .._utils.estimator import BaseEstimator, check_is_fitted
from ..exceptions import DataError
from ..glm import as_runs, summarize_prompts
from ..networks import Network
from ._data import prompt_components, purge, row_prompts
from ._result import DecodingResult, confusion_table

__all__ = ["Decoder", "ESTIMATORS"]

#: Named estimators of :class:`Decoder`.
ESTIMATORS = ("logistic", "svc", "ridge")


def _estimator(estimator, random_state):
    if not isinstance(estimator, str):
        if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
            raise TypeError(f"estimator must be one of {list(ESTIMATORS)} or a scikit-learn "
                            f"classifier, but got {estimator!r}.")
        from sklearn.base import clone

        return clone(estimator)
    check_option("estimator", estimator, ESTIMATORS)
    if estimator == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000, random_state=random_state)
    if estimator == "svc":
        from sklearn.svm import LinearSVC

        return LinearSVC(random_state=random_state)
    from sklearn.linear_model import RidgeClassifier

    return RidgeClassifier()


class Decoder(BaseEstimator):
    """Decode the condition of held-out prompts with a scikit-learn classifier.

    Each prompt (or block, ``by``) becomes one sample: the mean of its frames
    (``llmfmri.glm.summarize_prompts``), so the classifier sees the unit of
    inference, not thousands of dependent tokens. Cross-validation is
    grouped: a prompt is never on both sides of a split. Scaling and feature
    screening are steps of a scikit-learn ``Pipeline``, so they are fitted
    inside each training fold only (screening on all data first makes even
    pure noise decodable; Kriegeskorte et al. 2009, "Circular analysis").
    The permutation test is scikit-learn's ``permutation_test_score``
    (Ojala & Garriga 2010), permuting labels of whole prompts within runs.

    Parameters
    ----------
    estimator : {"logistic", "svc", "ridge"} or a scikit-learn classifier, default="logistic"
        ``LogisticRegression``, ``LinearSVC`` or ``RidgeClassifier`` (nilearn's names).
    screening : int, float, Network or boolean mask, optional
        An int ``k``: the ``k`` units with the largest ANOVA F
        (``SelectKBest(f_classif)``); a float in (0, 1): that share of units
        (``SelectPercentile``); both fitted within each training fold. A
        Network or mask: a fixed set of units, which must come from data
        outside the decoded runs.
    standardize : bool, default=True
        ``StandardScaler`` first (within each fold).
    cv : "run", int, or a scikit-learn splitter, default="run"
        ``"run"``: leave one run out (``LeaveOneGroupOut``); an int: that many
        ``GroupKFold`` folds over groups of prompts; a splitter gets those
        groups. In every case training samples that share a prompt id with
        the test fold are dropped.
    scoring : str, default="accuracy"
        A scikit-learn scorer name (``"balanced_accuracy"``...).
    by : str, default="prompt_id"
        The sample: ``"prompt_id"`` or ``"block"``.
    statistic : {"mean", "last", "first", "sum"}, default="mean"
        Summary of a sample's frames.
    n_permutations : int, default=100
        Permutations of the test (0: none), as scikit-learn's default.
    random_state : int or numpy Generator, optional
    n_jobs : int, default=1
    verbose : int, default=0

    Attributes
    ----------
    result_ : DecodingResult
        ``score``, ``accuracy``, ``chance``, ``null``, ``p_value``,
        ``cv_scores``, ``predictions``, ``confusion``.
    cv_scores_ : pandas.Series
        Score of each fold.
    classes_ : list of str
    splits_ : list of (train, test) arrays of int
        Row indices into :attr:`sample_table_`.
    sample_table_ : pandas.DataFrame
        One row per sample: ``run``, ``by``, ``n_frames``, ``trial_type``.
    estimator_ : sklearn.pipeline.Pipeline
        Fitted on all samples, for :meth:`predict`.
    feature_mask_ : ndarray of bool or None
        The fixed unit set, when ``screening`` is a Network or mask.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from llmfmri.decoding import Decoder
    >>> rng = np.random.default_rng(0)
    >>> events = [pd.DataFrame({"onset": np.arange(200), "duration": 1,
    ...                         "trial_type": np.repeat(["a", "b"] * 5, 20),
    ...                         "prompt_id": [f"r{r}-p{k // 5}" for k in range(200)]})
    ...           for r in range(3)]                  # every prompt is shown once
    >>> runs = [rng.standard_normal((200, 30)) for _ in range(3)]
    >>> for Y, ev in zip(runs, events):
    ...     Y[ev.trial_type == "a", :3] += 1.0
    >>> dec = Decoder(screening=5, n_permutations=20, random_state=0).fit(runs, events)
    >>> dec.result_.accuracy > 0.9, dec.result_.p_value < 0.05
    (True, True)
    """

    def __init__(self, estimator="logistic", *, screening=None, standardize=True, cv="run",
                 scoring="accuracy", by="prompt_id", statistic="mean", n_permutations=100,
                 random_state=None, n_jobs=1, verbose=0):
        self.estimator = estimator
        self.screening = screening
        self.standardize = standardize
        self.cv = cv
        self.scoring = scoring
        self.by = by
        self.statistic = statistic
        self.n_permutations = n_permutations
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ pieces
    def _pipeline(self, n_features, seed):
        from sklearn.feature_selection import SelectKBest, SelectPercentile, f_classif
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        steps = []
        if self.standardize:
            steps.append(("scale", StandardScaler()))
        s = self.screening
        if isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)):
            k = check_positive_int("screening", s)
            if k > n_features:
                raise DataError(f"screening={k} asks for more units than the {n_features} "
                                "available.")
            steps.append(("screen", SelectKBest(f_classif, k=k)))
        elif isinstance(s, numbers.Real) and not isinstance(s, (bool, np.bool_)):
            frac = check_fraction("screening", s, inclusive=(False, False))
            steps.append(("screen", SelectPercentile(f_classif, percentile=100.0 * frac)))
        steps.append(("estimator", _estimator(self.estimator, seed)))
        return Pipeline(steps)

    def _feature_mask(self, n_units, units):
        s = self.screening
        if s is None or isinstance(s, numbers.Real) and not isinstance(s, (bool, np.bool_)):
            return None
        if isinstance(s, Network):
            same = units is None or s.units is None or s.units is units or s.units == units
            if not same:
                raise DataError("screening is a Network over different units from the data.")
            mask = s.mask
        else:
            mask = np.asarray(s)
            if mask.dtype != bool:
                raise TypeError(
                    "screening must be None, an int k, a float fraction, a Network or a boolean "
                    f"mask, but got {type(s).__name__}."
                )
        if mask.shape != (n_units,):
            raise DataError(f"screening mask has shape {mask.shape}, but the data have "
                            f"{n_units} units.")
        if not mask.any():
            raise DataError("screening selects no unit (an empty network).")
        return mask

    def _samples(self, data, events, runs, units):
        view = as_runs(data, events, runs, units)
        table, X = summarize_prompts(view, by=self.by, statistic=self.statistic)
        return view, table, X

    def _splits(self, table, prompts):
        from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

        n = len(table)
        comps = prompt_components(prompts)
        idx = np.zeros((n, 1))
        if isinstance(self.cv, str):
            check_option("cv", self.cv, ("run",))
            run_groups = table["run"].to_numpy()
            if len(pd.unique(run_groups)) < 2:
                raise DataError("cv='run' needs at least 2 runs; pass cv=5 for grouped K-fold "
                                "over prompts.")
            raw = list(LeaveOneGroupOut().split(idx, groups=run_groups))
        elif isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool):
            k = check_positive_int("cv", self.cv, minimum=2)
            if k > len(np.unique(comps)):
                raise DataError(f"cv={k} folds, but there are only {len(np.unique(comps))} "
                                "independent groups of prompts.")
            raw = list(GroupKFold(n_splits=k).split(idx, groups=comps))
        elif hasattr(self.cv, "split"):
            with warnings.catch_warnings():   # plain K-fold ignores groups: purge() still holds
                warnings.filterwarnings("ignore", message="The groups parameter is ignored")
                raw = list(self.cv.split(idx, groups=comps))
        else:
            raise ValueError(f"cv must be 'run', an int or a scikit-learn splitter, but got "
                             f"{self.cv!r}.")
        splits = purge(raw, prompts)
        dropped = sum(len(a) - len(b) for (a, _), (b, _) in zip(raw, splits))
        if dropped:
            logger.info("Decoder: %d training samples shared a prompt with their test fold and "
                        "were left out of training", dropped)
        return splits

    # --------------------------------------------------------------------- fit
    @with_verbose
    def fit(self, data, events=None, *, runs=None, units=None, conditions=None):
        """Cross-validate (and permutation-test) the decoder on prompt patterns.

        Parameters
        ----------
        data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
        events : DataFrame or list of DataFrame, optional
            Per-frame events (a Recording's own by default) with
            ``trial_type`` and the ``by`` column.
        runs : list, optional
            A subset of a Recording's runs (or the labels of array runs).
        units : UnitSpace, optional
        conditions : list of str, optional
            Classes to decode (e.g. the tasks without ``"control"``); all
            trial types by default.

        Returns
        -------
        self

        Raises
        ------
        DataError
            For fewer than 2 classes, too few runs or groups for ``cv``, or a
            screening larger than the data.
        ValueError
            For an unknown estimator, scoring or cv.
        """
        from sklearn.base import clone
        from sklearn.metrics import get_scorer, get_scorer_names
        from sklearn.model_selection import permutation_test_score

        if self.scoring not in get_scorer_names():
            raise ValueError(f"Allowed values for scoring are scikit-learn scorer names such as "
                             f"'accuracy', 'balanced_accuracy', but got {self.scoring!r}."
                             + did_you_mean(self.scoring, get_scorer_names()))
        check_option("statistic", self.statistic, ("mean", "last", "first", "sum"))
        n_permutations = check_positive_int("n_permutations", self.n_permutations, minimum=0)
        rng = check_random_state(self.random_state)
        seed = int(rng.integers(2 ** 31 - 1))
        view, table, X = self._samples(data, events, runs, units)
        if "trial_type" not in table.columns:
            raise DataError("The events have no 'trial_type'; the decoder needs each sample's "
                            "condition.")
        y = table["trial_type"].astype(object)
        keep = y.notna() & (y != "mixed")
        if conditions is not None:
            conditions = [str(c) for c in conditions]
            unknown = [c for c in conditions if not (y == c).any()]
            if unknown:
                present = sorted(map(str, pd.unique(y[keep])))
                raise DataError(f"conditions names {unknown[0]!r}, which no sample has; "
                                f"conditions present: {present}."
                                + did_you_mean(unknown[0], present))
            keep &= y.isin(conditions)
        keep = keep.to_numpy()
        table = table[keep].reset_index(drop=True)
        X, y = X[keep], y[keep].astype(str).to_numpy()
        classes = sorted(pd.unique(y).tolist())
        if len(classes) < 2:
            raise DataError(f"Decoding needs at least 2 conditions, but the samples have "
                            f"{classes}.")
        mask = self._feature_mask(X.shape[1], view.units)
        if mask is not None:
            X = X[:, mask]
        pipe = self._pipeline(X.shape[1], seed)
        splits = self._splits(table, row_prompts(view, table, self.by))
        scorer = get_scorer(self.scoring)
        preds, fold_scores = [], {}
        for f, (train, test) in enumerate(splits):
            if len(np.unique(y[train])) < 2:
                raise DataError(
                    f"Fold {f} has {len(train)} training samples of "
                    f"{len(np.unique(y[train]))} condition(s) once the samples that share a "
                    "prompt id with its test fold are left out; runs that repeat prompts "
                    "cannot be decoded across runs without leaking them. Use more runs, runs "
                    "with disjoint prompts, or cv=K (K-fold over groups of prompts)."
                )
            est = clone(pipe).fit(X[train], y[train])
            fold = table["run"].iloc[test[0]] if self.cv == "run" else f
            fold_scores[fold] = float(scorer(est, X[test], y[test]))
            preds.append(pd.DataFrame({"fold": fold, "run": table["run"].to_numpy()[test],
                                       self.by: table[self.by].to_numpy()[test],
                                       "true": y[test], "predicted": est.predict(X[test])}))
        predictions = pd.concat(preds, ignore_index=True)
        predictions["correct"] = predictions["true"] == predictions["predicted"]
        cv_scores = pd.Series(fold_scores, name=self.scoring)
        cv_scores.index.name = "fold"
        score = float(cv_scores.mean())
        null, p_value = np.empty(0), float("nan")
        if n_permutations:
            score_p, null, p_value = permutation_test_score(
                pipe, X, y, groups=table["run"].to_numpy(), cv=splits,
                n_permutations=n_permutations, n_jobs=self.n_jobs, random_state=seed,
                scoring=self.scoring)
            score = float(score_p)
        self.result_ = DecodingResult(
            method="decoder", scoring=self.scoring, score=score,
            accuracy=float(predictions["correct"].mean()), chance=1.0 / len(classes),
            null=np.asarray(null, dtype=float), p_value=float(p_value), cv_scores=cv_scores,
            predictions=predictions,
            confusion=confusion_table(predictions["true"], predictions["predicted"], classes),
            classes=classes)
        self.cv_scores_ = cv_scores
        self.classes_ = classes
        self.splits_ = splits
        self.sample_table_ = table
        self.feature_mask_ = mask
        self.estimator_ = clone(pipe).fit(X, y)
        return self

    def predict(self, data, events=None, *, runs=None, units=None):
        """Predict the condition of every prompt (or block) of new data.

        Returns
        -------
        pandas.DataFrame
            The sample table (``run``, ``by``, ``n_frames``...) with a
            ``predicted`` column.
        """
        check_is_fitted(self)
        _, table, X = self._samples(data, events, runs, units)
        if self.feature_mask_ is not None:
            X = X[:, self.feature_mask_]
        out = table.copy()
        out["predicted"] = self.estimator_.predict(X)
        return out
