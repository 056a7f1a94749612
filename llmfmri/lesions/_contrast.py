"""Lesion contrasts in the GLM (paired, prompt-level) and dissociation tables (no torch)."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd

from .._utils import check_fraction, check_option, check_positive_int, check_random_state, \
    logger, with_verbose
from ..exceptions import ConstantUnitWarning, DataError
from ..glm import SecondLevelGLM, as_runs, correct, summarize_prompts
from ._units import as_lesion_units

__all__ = ["LesionContrast", "lesion_contrast", "DissociationResult", "dissociation_table"]


def is_recording(obj):
    """Recording-like: ``frames``, ``events``, ``runs``, ``units``."""
    return all(hasattr(obj, a) for a in ("frames", "events", "runs", "units"))


def _two_sided_p(z):
    from scipy import stats

    return np.minimum(2.0 * stats.norm.sf(np.abs(z)), 1.0)


class LesionContrast:
    """The prompt-level lesion effect per condition (see :func:`lesion_contrast`).

    Attributes
    ----------
    glm : SecondLevelGLM
        Fitted to the per-prompt differences lesioned - intact, one column
        per condition (no intercept).
    table : pandas.DataFrame
        One row per paired prompt: ``run, prompt_id, <condition>,
        n_frames_intact, n_frames_lesioned``.
    conditions : list of str
    units : UnitSpace or None
    unchanged : ndarray of bool, shape (n_units,)
        Units whose every paired difference is exactly 0 (the lesion does not
        reach them: upstream sites, other coordinates of the lesioned site).
    """

    def __init__(self, glm, table, conditions, units, condition_column, unchanged=None):
        self.glm, self.table, self.conditions, self.units = glm, table, conditions, units
        self.condition_column = condition_column
        self.unchanged = unchanged

    def __repr__(self):
        return f"LesionContrast({len(self.table)} paired prompts, conditions={self.conditions})"

    def map(self, contrast, output_type="z_score"):
        """A map of the lesion effect: ``"cond"`` (lesion effect within one condition),
        ``"a - b"`` (lesion x condition interaction), any contrast of the conditions.

        Returns
        -------
        UnitMap or dict of UnitMap (``output_type="all"``)
            Prompt-level inference (``inference="prompt"``): the paired t
            across prompts, dof ``n_prompts - n_conditions``.
        """
        return self.glm.compute_contrast(contrast, output_type=output_type)

    def contrasts(self, interactions=True):
        """The contrasts :meth:`summary` reports: each condition, then each pair ``a - b``."""
        out = list(self.conditions)
        if interactions:
            out += [f"{a} - {b}" for a, b in itertools.combinations(self.conditions, 2)]
        return out

    def _keep(self, exclude):
        if exclude is None:
            return None
        lu = as_lesion_units(exclude)
        if self.units is None:
            raise DataError("exclude= needs the recordings' UnitSpace.")
        table = self.units.table
        pairs = set(lu.pairs())
        drop = np.array([(s, int(i)) in pairs for s, i in zip(table["site"], table["index"])])
        return ~drop

    def summary(self, *, alpha=0.05, correction="fdr", exclude=None, interactions=True):
        """How much the lesion changes each condition's activity, and how much more in one.

        Parameters
        ----------
        alpha : float, default=0.05
        correction : {"fdr", "bonferroni"}, default="fdr"
            Over the units kept (two-sided p).
        exclude : Network or units, optional
            Units to leave out, typically the lesioned units themselves (they
            change by construction).
        interactions : bool, default=True
            Add ``a - b`` rows (the lesion x condition interaction).

        Returns
        -------
        pandas.DataFrame
            One row per contrast: ``contrast, kind`` (``"lesion effect"`` or
            ``"interaction"``), ``n_prompts``, ``dof``, ``n_units``,
            ``mean_effect``, ``mean_abs_effect``, ``max_abs_z``,
            ``n_significant``, ``fraction_significant``, ``n_unchanged`` (units
            the lesion does not reach: every difference exactly 0), ``alpha``,
            ``correction``, ``inference``.
        """
        alpha = check_fraction("alpha", alpha, inclusive=(False, False))
        check_option("correction", correction, ("fdr", "bonferroni"))
        keep = self._keep(exclude)
        unchanged = self.unchanged if keep is None else self.unchanged[keep]
        rows = []
        for con in self.contrasts(interactions):
            maps = self.map(con, output_type="all")
            z, eff = maps["z_score"].values, maps["effect_size"].values
            if keep is not None:
                z, eff = z[keep], eff[keep]
            q = correct(_two_sided_p(z), correction)
            sig = q <= alpha
            rows.append({"contrast": con,
                         "kind": "lesion effect" if con in self.conditions else "interaction",
                         "n_prompts": int(len(self.table)), "dof": maps["stat"].dof,
                         "n_units": int(z.size), "mean_effect": float(np.mean(eff)),
                         "mean_abs_effect": float(np.mean(np.abs(eff))),
                         "max_abs_z": float(np.max(np.abs(z))), "n_significant": int(sig.sum()),
                         "fraction_significant": float(sig.mean()),
                         "n_unchanged": int(unchanged.sum()), "alpha": alpha,
                         "correction": correction, "inference": maps["z_score"].inference})
        return pd.DataFrame(rows)

    def layer_profile(self, contrast, *, alpha=0.05, correction="fdr", exclude=None):
        """Where the lesion changes activity: per site, the mean |effect| and significant units.

        Returns
        -------
        pandas.DataFrame
            One row per site: ``site, layer, component, n_units, mean_abs_effect,
            n_significant, fraction_significant`` (correction over all kept units).
        """
        if self.units is None:
            raise DataError("layer_profile needs the recordings' UnitSpace.")
        maps = self.map(contrast, output_type="all")
        z, eff = maps["z_score"].values, maps["effect_size"].values
        keep = self._keep(exclude)
        keep = np.ones(z.size, dtype=bool) if keep is None else keep
        q = np.ones(z.size)
        q[keep] = correct(_two_sided_p(z[keep]), correction)
        sig = (q <= alpha) & keep
        table = self.units.table
        df = pd.DataFrame({"site": table["site"], "layer": table["layer"],
                           "component": table["component"], "keep": keep,
                           "abs_effect": np.where(keep, np.abs(eff), np.nan), "sig": sig})
        out = df.groupby("site", sort=False).agg(
            layer=("layer", "first"), component=("component", "first"),
            n_units=("keep", "sum"), mean_abs_effect=("abs_effect", "mean"),
            n_significant=("sig", "sum")).reset_index()
        out["fraction_significant"] = out["n_significant"] / out["n_units"].clip(lower=1)
        out.insert(0, "contrast", contrast)
        return out


@with_verbose
def lesion_contrast(intact, lesioned, *, condition="trial_type", by="prompt_id",
                    statistic="mean", runs=None, events=None, lesioned_events=None, units=None,
                    verbose=None):
    """Where and how much a lesion changes each condition's activity: a paired, prompt-level GLM.

    The same paradigm recorded intact and under :func:`lesion` presents the
    same prompts twice, so the design is paired at the prompt level: each
    prompt's summary (mean of its frames, or its last frame...) is taken in
    both recordings, the difference lesioned - intact is the sample, and a
    second-level GLM with one column per condition (prompts as the random
    effect) estimates the lesion effect within each condition
    (``map("cond")``) and the lesion x condition interaction
    (``map("a - b")``). This is the lesion factor (intact / lesioned) x
    condition model with a random intercept per prompt, fitted through its
    paired differences.

    Parameters
    ----------
    intact, lesioned : Recording, or array (n_frames, n_units) / list of arrays (runs)
        The same paradigm and units, recorded without and with the lesion.
    condition : str, default="trial_type"
    by : str, default="prompt_id"
        The paired sampling unit.
    statistic : {"mean", "last", "first", "sum"}, default="mean"
        Summary of a prompt's frames (with ``frames: generated`` the two
        recordings may generate different tokens; prompt or pooled frames
        read the same input in both).
    runs : list of int, optional
    events, lesioned_events : DataFrame or list of DataFrame, optional
        Per-frame events of array data (``lesioned_events`` defaults to
        ``events``); recordings bring their own.
    units : UnitSpace, optional
        Units of array data.
    verbose : optional

    Returns
    -------
    LesionContrast

    Raises
    ------
    DataError
        When the recordings have different units or different prompts, or a
        prompt has different conditions in them.
    """
    if not is_recording(intact):
        intact = as_runs(intact, events=events, runs=runs, units=units)
    if not is_recording(lesioned):
        lesioned = as_runs(lesioned, runs=runs, units=units,
                           events=events if lesioned_events is None else lesioned_events)
    if not (intact.units is lesioned.units or intact.units == lesioned.units):
        raise DataError(
            f"The intact and lesioned recordings have different units ({intact.units!r} and "
            f"{lesioned.units!r}); record both with the same sites and units."
        )
    t0, v0 = summarize_prompts(intact, by=by, statistic=statistic, runs=runs)
    t1, v1 = summarize_prompts(lesioned, by=by, statistic=statistic, runs=runs)
    for t in (t0, t1):
        if condition not in t.columns:
            raise DataError(f"The prompt table has no {condition!r} column; columns are "
                            f"{list(t.columns)}.")
    k0 = pd.Series(np.arange(len(t0)), index=pd.MultiIndex.from_arrays(
        [t0["run"].astype(str), t0[by].astype(str)]))
    k1 = pd.Series(np.arange(len(t1)), index=pd.MultiIndex.from_arrays(
        [t1["run"].astype(str), t1[by].astype(str)]))
    common = k0.index.intersection(k1.index, sort=False)
    if len(common) == 0:
        raise DataError("The intact and lesioned recordings share no prompt; record the same "
                        "paradigm (and runs) twice.")
    dropped = len(k0) + len(k1) - 2 * len(common)
    if dropped:
        logger.warning("lesion_contrast: %d prompts are in only one recording and are left out",
                       dropped)
    i0, i1 = k0[common].to_numpy(), k1[common].to_numpy()
    c0 = t0[condition].to_numpy()[i0]
    c1 = t1[condition].to_numpy()[i1]
    if not np.array_equal(c0.astype(str), c1.astype(str)):
        bad = int(np.flatnonzero(c0.astype(str) != c1.astype(str))[0])
        raise DataError(f"Prompt {common[bad]} has condition {c0[bad]!r} intact but {c1[bad]!r} "
                        "lesioned; the recordings are of different paradigms.")
    diff = v1[i1] - v0[i0]
    table = pd.DataFrame({"run": t0["run"].to_numpy()[i0], by: t0[by].to_numpy()[i0],
                          condition: c0, "n_frames_intact": t0["n_frames"].to_numpy()[i0],
                          "n_frames_lesioned": t1["n_frames"].to_numpy()[i1]})
    keep = pd.notna(table[condition]).to_numpy() & (table[condition] != "mixed").to_numpy()
    table, diff = table[keep].reset_index(drop=True), diff[keep]
    events = pd.DataFrame({"onset": np.arange(len(table), dtype=float), "duration": 1.0,
                           condition: table[condition].to_numpy(),
                           "_pair": [f"{r}:{p}" for r, p in zip(table["run"], table[by])]})
    with warnings.catch_warnings():
        # units the lesion does not reach (upstream of it) have differences of exactly 0:
        # expected, reported as n_unchanged by LesionContrast.summary
        warnings.simplefilter("ignore", ConstantUnitWarning)
        glm = SecondLevelGLM().fit_prompts(diff, events, by="_pair", condition=condition,
                                           units=intact.units)
    conditions = list(glm.design_matrix_.columns)
    logger.info("lesion_contrast: %d paired prompts, conditions %s", len(table), conditions)
    return LesionContrast(glm, table, conditions, intact.units, condition,
                          unchanged=~np.any(diff != 0, axis=0))


# ------------------------------------------------------------------ dissociation
class DissociationResult:
    """What :func:`dissociation_table` returns.

    Attributes
    ----------
    cells : pandas.DataFrame
        One row per (lesion, task): the mean per-item deficit, its bootstrap
        interval over items, and, with control draws (each draw's mean over
        items), the control mean, median and spread, the specific deficit
        (lesion - control median: robust to the heavy tails of random
        lesions) and the empirical p.
    contrasts : pandas.DataFrame
        One row per lesion and other task: the deficit on the lesion's own
        task minus that on the other task (items of the two tasks are
        independent: Welch t across items), raw and, with controls, after
        subtracting each task's control median.
    double : pandas.DataFrame
        One row per pair of lesions with own tasks (A: a, B: b): the
        crossover interaction ``(A on a - B on a) - (A on b - B on b)``;
        per item, the difference of its deficits under A and B (paired
        within item) is compared between the items of a and of b (Welch t).
    """

    def __init__(self, cells, contrasts, double):
        self.cells, self.contrasts, self.double = cells, contrasts, double

    def __repr__(self):
        return (f"DissociationResult({self.cells['lesion'].nunique()} lesions x "
                f"{self.cells['task'].nunique()} tasks)")

    def matrix(self, value="deficit"):
        """Lesions x tasks table of one column of :attr:`cells`."""
        return self.cells.pivot(index="lesion", columns="task", values=value)


def _welch(x, y):
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.size < 2 or y.size < 2:
        return float("nan"), float("nan"), float("nan")
    res = stats.ttest_ind(x, y, equal_var=False)
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    dof = (vx + vy) ** 2 / (vx ** 2 / (x.size - 1) + vy ** 2 / (y.size - 1)) if vx + vy > 0 \
        else float("nan")
    return float(res.statistic), float(res.pvalue), float(dof)


def _boot_mean(x, n_boot, rng, confidence):
    x = np.asarray(x, float)
    if x.size == 0:
        return float("nan"), float("nan")
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(lo), float(hi)


def dissociation_table(scores, *, own=None, lesion="lesion", task="task", item="item",
                       value="deficit", draw="draw", real="lesion", alternative="greater",
                       n_boot=2000, confidence=0.95, random_state=0):
    """Dissociation table: the deficit each lesion causes on each task, with statistics.

    Parameters
    ----------
    scores : DataFrame
        Long table, one row per (lesion, draw, task, item): ``value`` is the
        item's deficit under that lesion (e.g. NLL per token lesioned -
        intact, or accuracy intact - lesioned). ``draw`` says which rows are
        the lesion itself (``real``) and which are control draws of the same
        lesion (any other value, e.g. ``"random-0"``); without a ``draw``
        column every row is the lesion.
    own : mapping of str to str, optional
        Each lesion's own task (default: the task of the same name, when
        there is one). Needed for :attr:`DissociationResult.contrasts` and
        :attr:`DissociationResult.double`.
    lesion, task, item, value, draw : str
        Column names.
    real : str, default="lesion"
        The ``draw`` value of the lesion itself.
    alternative : {"greater", "less", "two-sided"}, default="greater"
        Direction of a deficit in ``value`` (for the empirical p against
        the controls).
    n_boot : int, default=2000
    confidence : float, default=0.95
    random_state : int, default=0

    Returns
    -------
    DissociationResult
    """
    from ._controls import compare_to_controls

    n_boot = check_positive_int("n_boot", n_boot)
    rng = check_random_state(random_state)
    cols = [lesion, task, item, value]
    missing = [c for c in cols if c not in scores.columns]
    if missing:
        raise DataError(f"scores have no column {missing[0]!r}; columns are "
                        f"{list(scores.columns)}.")
    df = scores.copy()
    if draw not in df.columns:
        df[draw] = real
    df[value] = pd.to_numeric(df[value], errors="coerce")
    lesions = list(dict.fromkeys(df[lesion]))
    tasks = list(dict.fromkeys(df[task]))
    if own is None:
        own = {les: les for les in lesions if les in tasks}
    bad = {k: v for k, v in own.items() if k not in lesions or v not in tasks}
    if bad:
        raise DataError(f"own names lesions or tasks not in scores: {bad}; lesions are "
                        f"{lesions}, tasks {tasks}.")
    cells, per_item = [], {}
    for les in lesions:
        for t in tasks:
            sub = df[(df[lesion] == les) & (df[task] == t)]
            real_rows = sub[sub[draw] == real].dropna(subset=[value])
            if real_rows.empty:
                continue
            x = real_rows.set_index(item)[value]
            per_item[(les, t)] = x
            lo, hi = _boot_mean(x.to_numpy(), n_boot, rng, confidence)
            row = {"lesion": les, "task": t, "own_task": own.get(les) == t,
                   "n_items": int(x.size), "deficit": float(x.mean()),
                   "ci_low": lo, "ci_high": hi}
            ctrl = sub[sub[draw] != real].groupby(draw)[value].mean()
            if len(ctrl):
                cmp = compare_to_controls(row["deficit"], ctrl.to_numpy(),
                                          alternative=alternative)
                row.update(control_mean=cmp["control_mean"],
                           control_median=cmp["control_median"], control_sd=cmp["control_sd"],
                           n_controls=cmp["n_controls"],
                           specific_deficit=row["deficit"] - cmp["control_median"],
                           p_empirical=cmp["p_empirical"])
            cells.append(row)
    cells = pd.DataFrame(cells)
    ctrl_mean = {}
    if "control_median" in cells.columns:
        ctrl_mean = {(r.lesion, r.task): r.control_median for r in cells.itertuples()}
    contrasts = []
    for les, a in own.items():
        if (les, a) not in per_item:
            continue
        for b in tasks:
            if b == a or (les, b) not in per_item:
                continue
            xa, xb = per_item[(les, a)], per_item[(les, b)]
            t, p, dof = _welch(xa, xb)
            row = {"lesion": les, "own_task": a, "other_task": b,
                   "deficit_own": float(xa.mean()), "deficit_other": float(xb.mean()),
                   "difference": float(xa.mean() - xb.mean()), "t": t, "dof": dof, "p": p,
                   "test": "Welch t across items"}
            if ctrl_mean:
                row["specific_difference"] = float(
                    (xa.mean() - ctrl_mean.get((les, a), np.nan))
                    - (xb.mean() - ctrl_mean.get((les, b), np.nan)))
            contrasts.append(row)
    double = []
    pairs = [(A, a) for A, a in own.items()]
    for (A, a), (B, b) in itertools.combinations(pairs, 2):
        if a == b or not all(k in per_item for k in [(A, a), (A, b), (B, a), (B, b)]):
            continue
        da = (per_item[(A, a)] - per_item[(B, a)]).dropna()  # paired within item
        db = (per_item[(A, b)] - per_item[(B, b)]).dropna()
        t, p, dof = _welch(da, db)
        double.append({"lesion_a": A, "task_a": a, "lesion_b": B, "task_b": b,
                       "interaction": float(da.mean() - db.mean()),
                       "A_on_a": float(per_item[(A, a)].mean()),
                       "A_on_b": float(per_item[(A, b)].mean()),
                       "B_on_a": float(per_item[(B, a)].mean()),
                       "B_on_b": float(per_item[(B, b)].mean()),
                       "t": t, "dof": dof, "p": p,
                       "test": "Welch t across items of (A - B) deficits, task a vs b"})
    return DissociationResult(cells, pd.DataFrame(contrasts), pd.DataFrame(double))
