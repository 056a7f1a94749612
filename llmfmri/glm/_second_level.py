"""SecondLevelGLM: inference across runs, prompt sets, seeds or models, and over prompts."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .._utils import check_option, did_you_mean, logger, with_verbose
from .._utils.estimator import BaseEstimator, check_is_fitted
from ..design import check_design_matrix, check_events, events_per_frame
from ..exceptions import DataError
from ._data import as_2d, column_block, is_recording, recording_runs
from ._engine import run_glm
from ._unitmap import OUTPUT_TYPES, UnitMap, contrast_to_maps

__all__ = ["SecondLevelGLM", "summarize_prompts", "PromptSummary"]

_STATISTICS = ("mean", "last", "first", "sum")
#: per-frame columns never carried into the per-prompt table (they vary within a prompt)
_NOT_CARRIED = ("onset", "duration", "frame_kind", "position", "token", "token_id", "logprob")


class PromptSummary(NamedTuple):
    """What :func:`summarize_prompts` returns (unpacks as ``table, values``).

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (run, group): ``run``, the group column, ``n_frames``, the
        group's ``trial_type`` and ``block`` (``"mixed"`` when they vary within
        it), and every other events column that is constant within every group
        (``role``, ``trial``, ``response``...).
    values : ndarray of shape (n_groups, n_units)
        The summary of each group's frames.
    """

    table: pd.DataFrame
    values: np.ndarray


def summarize_prompts(data, events=None, *, by="prompt_id", statistic="mean", runs=None,
                      chunk_size=None):
    """One summary per prompt (or block): the unit of inference at the prompt level.

    Tokens of one prompt are strongly dependent; treating thousands of them
    as independent samples overstates the evidence. Summarising each prompt
    first and testing across prompts generalises over prompts instead.

    Parameters
    ----------
    data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
    events : DataFrame or list of DataFrame, optional
        Per-frame events (taken from a Recording by default), with a ``by``
        column and optionally ``trial_type``, ``block``.
    by : str, default="prompt_id"
        Events column whose groups are summarised.
    statistic : {"mean", "last", "first", "sum"}, default="mean"
        Mean over the group's frames, its last or first frame (last-token
        pooling), or the sum.
    runs : list, optional
        Subset of a Recording's runs.
    chunk_size : int, optional
        Units per read block.

    Returns
    -------
    PromptSummary
        ``.table`` (pandas.DataFrame, one row per (run, group): ``run``,
        ``by``, ``n_frames``, the group's ``trial_type`` and ``block``, and
        every other events column constant within each group) and ``.values`` (ndarray of shape
        (n_groups, n_units)); unpacks as ``table, values``.
    """
    check_option("statistic", statistic, _STATISTICS)
    arrays, evs, runs, _ = recording_runs(data, runs, events=events)
    if any(e is None for e in evs):
        raise DataError(
            f"summarize_prompts needs per-frame events for each of the {len(arrays)} runs, "
            f"but {sum(e is None for e in evs)} have none."
        )
    tables, values = [], []
    for run, Y, ev in zip(runs, arrays, evs):
        Y, (n, u) = as_2d(Y)
        ev = check_events(ev)
        if by not in ev.columns:
            raise DataError(
                f"events of run {run} have no {by!r} column; columns are {list(ev.columns)}."
                + did_you_mean(by, ev.columns)
            )
        ft = np.arange(n, dtype=float)
        labels, covered = events_per_frame(ev, by, ft)
        codes, uniques = pd.factorize(pd.Series(labels), use_na_sentinel=True)
        G = len(uniques)
        if G == 0:
            raise DataError(f"No frame of run {run} has a {by!r} label.")
        rows = {"run": run, by: list(uniques),
                "n_frames": np.bincount(codes[codes >= 0], minlength=G)}
        for col in ev.columns:
            if col in _NOT_CARRIED or col == by:
                continue
            vals, _ = events_per_frame(ev, col, ft)
            per = []
            for g in range(G):
                v = pd.unique(pd.Series(vals[codes == g]).dropna())
                per.append(v[0] if len(v) == 1 else (np.nan if len(v) == 0 else "mixed"))
            if col in ("trial_type", "block") or "mixed" not in per:
                rows[col] = per  # other columns only when constant within every group
        tables.append(pd.DataFrame(rows))
        # summary as a (G, n) matrix applied block by block
        M = np.zeros((G, n))
        for g in range(G):
            idx = np.flatnonzero(codes == g)
            if statistic == "mean":
                M[g, idx] = 1.0 / idx.size
            elif statistic == "sum":
                M[g, idx] = 1.0
            elif statistic == "last":
                M[g, idx[-1]] = 1.0
            else:
                M[g, idx[0]] = 1.0
        out = np.empty((G, u))
        block = column_block(Y, n, u, chunk_size)
        for a in range(0, u, block):
            b = min(a + block, u)
            Yb = np.asarray(Y[:, a:b], dtype=np.float64)
            if not np.isfinite(Yb[codes >= 0]).all():
                raise DataError(f"Run {run} has NaN or infinite values in summarised frames.")
            out[:, a:b] = M @ Yb
        values.append(out)
    table = pd.concat(tables, ignore_index=True)
    if "trial_type" in table.columns and (table["trial_type"] == "mixed").any():
        bad = table.loc[table["trial_type"] == "mixed", by].tolist()[:5]
        logger.warning("summarize_prompts: %s %s span several trial types", by, bad)
    return PromptSummary(table, np.vstack(values))


class SecondLevelGLM(BaseEstimator):
    """Second-level GLM on per-sample maps: one-sample, paired, two-sample and prompt-level tests.

    Samples can be first-level effect maps of runs, prompt sets, seeds or
    models (one-sample or paired tests), or per-prompt summaries
    (:meth:`fit_prompts`), so that inference generalises over prompts.
    The fit is OLS across samples, per unit.

    Parameters
    ----------
    chunk_size : int, optional
        Units per block.
    verbose : int, default=0
        Log progress (INFO) for this estimator's calls when > 0.

    Attributes
    ----------
    design_matrix_ : pandas.DataFrame of shape (n_samples, n_regressors)
    results_ : GLMResults
    units_ : UnitSpace or None
    sample_table_ : pandas.DataFrame or None
        The per-prompt table after :meth:`fit_prompts`.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.glm import SecondLevelGLM
    >>> rng = np.random.default_rng(0)
    >>> effects = [rng.standard_normal(6) + [3, 0, 0, 0, 0, 0] for _ in range(12)]
    >>> slm = SecondLevelGLM().fit(effects)
    >>> float(slm.compute_contrast("intercept", output_type="stat").values[0]) > 5
    True
    """

    def __init__(self, *, chunk_size=None, verbose=0):
        self.chunk_size = chunk_size
        self.verbose = verbose

    @with_verbose
    def fit(self, second_level_input, design_matrix=None, *, paired_with=None, units=None):
        """Fit across samples.

        Parameters
        ----------
        second_level_input : list of UnitMap, list of arrays, or array of shape (n_samples, n_units)
            One effect map per sample (e.g. ``effect_size`` maps of runs, seeds
            or models).
        design_matrix : DataFrame of shape (n_samples, k), optional
            Default: one column ``intercept`` (a one-sample t test).
        paired_with : same type as ``second_level_input``, optional
            Maps paired with the inputs (same order): the test is on their
            differences ``input - paired_with`` (a paired t test).
        units : UnitSpace, optional
            Units of array inputs (UnitMaps bring theirs).

        Returns
        -------
        self
        """
        Y, map_units = self._stack(second_level_input, "second_level_input")
        if paired_with is not None:
            Y2, _ = self._stack(paired_with, "paired_with")
            if Y2.shape != Y.shape:
                raise DataError(
                    f"paired_with must match second_level_input, but got shapes {Y2.shape} and "
                    f"{Y.shape}."
                )
            Y = Y - Y2
        n = Y.shape[0]
        if design_matrix is None:
            design_matrix = pd.DataFrame({"intercept": np.ones(n)})
        design_matrix = check_design_matrix(design_matrix, n_frames=n)
        self.design_matrix_ = design_matrix
        self.units_ = units if units is not None else map_units
        if self.units_ is not None and self.units_.n_units != Y.shape[1]:
            raise DataError(
                f"units has {self.units_.n_units} units but the maps have {Y.shape[1]}."
            )
        self.results_ = run_glm(Y, design_matrix, noise_model="ols", chunk_size=self.chunk_size)
        self.sample_table_ = None
        self._Y = Y
        return self

    @staticmethod
    def _stack(inputs, name):
        units = None
        if isinstance(inputs, (list, tuple)):
            if len(inputs) < 2:
                raise DataError(f"{name} needs at least 2 samples, but got {len(inputs)}.")
            rows = []
            for k, m in enumerate(inputs):
                if isinstance(m, UnitMap):
                    if m.values.ndim != 1:
                        raise DataError(f"{name}[{k}] is a 2-D map; give one value per unit.")
                    if m.units is not None:
                        if units is None:
                            units = m.units
                        elif not (m.units is units or m.units == units):
                            raise DataError(f"{name}[{k}] has different units from {name}[0].")
                    rows.append(m.values)
                else:
                    rows.append(np.asarray(m, dtype=np.float64).ravel())
            sizes = {r.size for r in rows}
            if len(sizes) != 1:
                raise DataError(
                    f"All maps in {name} need the same number of units, got {sorted(sizes)}."
                )
            Y = np.vstack(rows)
        else:
            Y = np.asarray(inputs, dtype=np.float64)
            if Y.ndim != 2:
                raise DataError(
                    f"{name} must be a list of maps or an array of shape (n_samples, n_units), "
                    f"but got shape {Y.shape}."
                )
        return Y, units

    @with_verbose
    def fit_prompts(self, data, events=None, *, by="prompt_id", condition="trial_type",
                    statistic="mean", covariates=None, runs=None, units=None):
        """Prompt-level fit: one summary per prompt, one column per condition.

        Parameters
        ----------
        data : Recording, array of shape (n_frames, n_units), or list of arrays (runs)
        events : DataFrame or list of DataFrame, optional
            Per-frame events (from the Recording by default).
        by : str, default="prompt_id"
            The sampling unit (``"prompt_id"`` or ``"block"``).
        condition : str, default="trial_type"
            Events column giving each prompt's condition; prompts without one
            (baseline) are left out.
        statistic : {"mean", "last", "first", "sum"}
            Summary of each prompt's frames (see :func:`summarize_prompts`).
        covariates : list of str, optional
            Numeric columns of the prompt table (e.g. ``"n_frames"``), centred
            and added to the design.
        runs, units
            As in :meth:`FirstLevelGLM.fit`.

        Returns
        -------
        self
            ``compute_contrast("a - b")`` then tests conditions across prompts,
            with ``n_prompts - n_columns`` degrees of freedom.
        """
        table, values = summarize_prompts(data, events, by=by, statistic=statistic, runs=runs,
                                          chunk_size=self.chunk_size)
        if condition not in table.columns:
            raise DataError(
                f"The prompt table has no {condition!r} column (columns {list(table.columns)}); "
                "pass condition=... naming the events column with each prompt's condition."
            )
        keep = table[condition].notna().to_numpy() & (table[condition] != "mixed").to_numpy()
        if not keep.any():
            raise DataError(f"No {by} has a single {condition!r}; nothing to compare.")
        table = table[keep].reset_index(drop=True)
        values = values[keep]
        conds = sorted(pd.unique(table[condition]).tolist(), key=str)
        design = pd.DataFrame({str(c): (table[condition] == c).to_numpy(dtype=float)
                               for c in conds})
        for cov in covariates or []:
            if cov not in table.columns:
                raise DataError(f"covariate {cov!r} is not a prompt table column "
                                f"{list(table.columns)}." + did_you_mean(cov, table.columns))
            v = pd.to_numeric(table[cov], errors="coerce").to_numpy(dtype=float)
            design[cov] = v - np.nanmean(v)
        if units is None and is_recording(data):
            units = data.units
        self.fit(values, design, units=units)
        self.sample_table_ = table
        return self

    def compute_contrast(self, contrast_def="intercept", stat_type=None, output_type="z_score"):
        """Compute a second-level contrast.

        Parameters
        ----------
        contrast_def : str, list of str, dict or array, default="intercept"
        stat_type : {None, "t", "F"}
        output_type : {"z_score", "stat", "p_value", "effect_size", "effect_variance", "all"}

        Returns
        -------
        UnitMap, or dict of UnitMap for ``"all"``
        """
        check_is_fitted(self)
        check_option("output_type", output_type, OUTPUT_TYPES + ("all",))
        inference = "second_level" if self.sample_table_ is None else "prompt"
        return contrast_to_maps(self.results_.contrast(contrast_def, stat_type), self.units_,
                                output_type, inference=inference)

    @with_verbose
    def permutation_test(self, contrast_def="intercept", *, n_permutations=1000, two_sided=True,
                         random_state=None):
        """Family-wise error over units by permutation max-T across samples.

        The second-level counterpart of nilearn's ``non_parametric_inference``
        (Nichols & Holmes 2002). When the contrast tests the intercept of a design
        with no other column (a one-sample or paired test), each sample's sign is
        flipped at random (under the null its effect is symmetric about 0);
        otherwise the rows of the tested columns are permuted between samples
        (Manly), the other columns staying in place. When there are at most
        ``n_permutations`` distinct sign patterns (``2^n``) or orders (``n!``), all
        of them are used and the p values are exact.

        Parameters
        ----------
        contrast_def : str, dict or array, default="intercept"
            A t contrast over the design columns.
        n_permutations : int, default=1000
        two_sided : bool, default=True
        random_state : int or numpy Generator, optional

        Returns
        -------
        PermutationResult
            ``stat`` (t), ``p_fwer``, ``null_max``; ``.p_map()`` a UnitMap.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ContrastError
            For an F contrast (more than one row).
        """
        import itertools
        import math

        from .._utils import check_positive_int, check_random_state
        from ._contrast import contrast_matrix
        from ._correct import PermutationResult
        from ._stats import ratio_stat

        check_is_fitted(self)
        n_permutations = check_positive_int("n_permutations", n_permutations)
        X = self.design_matrix_.to_numpy(dtype=np.float64)
        names = [str(c) for c in self.design_matrix_.columns]
        C, _, cname = contrast_matrix(contrast_def, names, "t")
        c = C[0]
        tested = np.flatnonzero(c)
        n = X.shape[0]
        flip = X.shape[1] == 1 and np.allclose(X[:, 0], X[0, 0])
        rng = check_random_state(random_state)
        if flip:
            total = 2 ** n
            exhaustive = total - 1 <= n_permutations
            if exhaustive:
                draws = [np.array(s, dtype=float) for s in itertools.product((1.0, -1.0), repeat=n)
                         ][1:]
            else:
                draws = [rng.choice((-1.0, 1.0), size=n) for _ in range(n_permutations)]
        else:
            exhaustive = math.factorial(n) - 1 <= n_permutations
            if exhaustive:
                draws = [np.array(p) for p in itertools.permutations(range(n))][1:]
            else:
                draws = [rng.permutation(n) for _ in range(n_permutations)]

        def t_of(Xp):
            Q, R = np.linalg.qr(Xp)
            w = np.linalg.solve(R.T, c)
            Z = Q.T @ self._Y
            rss = np.einsum("ij,ij->j", self._Y, self._Y) - np.einsum("ij,ij->j", Z, Z)
            rss = np.where(rss > 1e-12 * np.einsum("ij,ij->j", self._Y, self._Y), rss, 0.0)
            return ratio_stat(w @ Z, (w @ w) * rss / (n - X.shape[1]))

        stat = t_of(X)
        null_max = np.empty(len(draws))
        for k, d in enumerate(draws):
            Xp = X.copy()
            if flip:
                Xp[:, 0] = X[:, 0] * d
            else:
                Xp[:, tested] = X[d][:, tested]
            tp = t_of(Xp)
            null_max[k] = (np.abs(tp) if two_sided else tp).max()
        logger.info("SecondLevelGLM.permutation_test: %s %d %s (%s)",
                    "all" if exhaustive else "random", len(draws),
                    "sign flips" if flip else "permutations of the samples", cname)
        result = PermutationResult(stat, null_max, two_sided=two_sided, contrast=cname,
                                   units=self.units_, dof=float(n - X.shape[1]),
                                   by="sign flips" if flip else "samples")
        result.inference = "second_level"
        return result
