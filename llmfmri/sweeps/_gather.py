"""Gathering a sweep: one tidy table over cells, maps stacked for the second level."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import check_option, did_you_mean, logger
from ..exceptions import DataError
from ..io import read_tsv
from ._lesions import BEHAVIOUR_FILE, behaviour_columns
from ._run import cell_dir, cell_status
from ._spec import Sweep, lesion_kind, lesion_label, load_sweep

__all__ = ["gather", "SweepResults", "group_analysis", "GroupResult", "pair_cells",
           "compare_lesion_controls", "save_sweep_tables", "PAIRINGS"]

#: how :func:`group_analysis` can pair cells: ``"lesion"`` pairs each lesioned cell with the
#: intact cell (``lesion: none``) that has the same values on every other axis
PAIRINGS = ("lesion",)
_LESION_COLUMNS = ("lesion", "lesion_kind", "lesion_role", "draw")


@dataclass
class SweepResults:
    """Everything the cells of a sweep wrote, gathered.

    Attributes
    ----------
    sweep : Sweep
    out : Path
    cells : pandas.DataFrame
        One row per cell: ``cell``, every axis, ``status``, ``seconds``, ``error``. A
        ``lesion`` axis gives the columns ``lesion`` (the value's label, ``"none"`` when
        intact), ``lesion_kind`` (``units``, ``weights``, ``dimension``, ``truncation``
        or ``none``), ``lesion_role`` (``intact``, ``lesion``, ``control``) and ``draw``
        (0, or the control draw 1..N).
    table : pandas.DataFrame
        One row per complete cell and task: the cell's parameters and every number of
        its ``summary.json`` (``n_units``, ``token_level_n_units``, identification
        ``accuracy``, ``chance``, ``p_value``, repeatability...), and the cell's
        behaviour columns (as in :attr:`behaviour`) on each of its rows. Without the
        networks step there are no tasks: one row per complete cell, as
        :attr:`behaviour`.
    behaviour : pandas.DataFrame
        One row per complete cell of a sweep with the behaviour step: the cell's
        parameters and one column ``<measure>_<set>`` per measure and set over the whole
        set (``perplexity_science``, ``accuracy_template``, ``answer_perplexity_...``,
        ``choice_accuracy_...``); intervals are in each cell's ``behaviour.tsv``.
        Empty without the step.
    """

    sweep: Sweep
    out: Path
    cells: pd.DataFrame
    table: pd.DataFrame
    behaviour: pd.DataFrame = field(default_factory=pd.DataFrame)
    _summaries: dict = field(default_factory=dict, repr=False)
    _measures: dict = field(default_factory=dict, repr=False)

    @property
    def measures(self):
        """Behaviour columns: ``{"<measure>_<set>": (measure, set)}``."""
        return dict(self._measures)

    @property
    def tasks(self):
        """Tasks present in every complete cell."""
        sets = [set(s["tasks"]) for s in self._summaries.values()]
        return sorted(set.intersection(*sets)) if sets else []

    def maps(self, task, kind="effect_size"):
        """The ``task``'s map of every complete cell, as UnitMaps in the sweep's order.

        Parameters
        ----------
        task : str
        kind : {"effect_size", "z_score"}, default="effect_size"
            Effect maps are what a second level over cells tests.

        Returns
        -------
        list of UnitMap, list of str
            The maps and the cells they come from.

        Raises
        ------
        DataError
            For a task some complete cell does not have, or cells with different units.
        """
        import nibabel as nib

        from ..glm import UnitMap
        from ..io import statmap_path
        from ..units import UnitSpace

        if task not in self.tasks:
            raise DataError(f"Task {task!r} is not in every complete cell; tasks: {self.tasks}.")
        maps, labels, space = [], [], None
        for label, summary in self._summaries.items():
            folder = self.out / "cells" / label
            units = UnitSpace.from_tsv(folder / "units.tsv")
            if space is None:
                space = units
            elif units != space:
                raise DataError(f"Cell {label!r} recorded other units than the first cell; a "
                                "group analysis needs the same units in every cell.")
            info = summary["tasks"][task]
            path = statmap_path(folder / "analysis", info["label"], kind,
                                task=summary.get("task_label"))
            if not path.exists():
                matches = sorted((folder / "analysis").glob(
                    f"*contrast-{info['label']}_stat-{'effect' if kind == 'effect_size' else 'z'}"
                    "_statmap.nii.gz"))
                if not matches:
                    raise DataError(f"Cell {label!r} has no {kind} map of {task!r} in "
                                    f"{folder / 'analysis'}.")
                path = matches[0]
            values = space.from_volume(np.asarray(nib.load(str(path)).dataobj))
            maps.append(UnitMap(values, space, output_type=kind, contrast=info["contrast"],
                                inference=summary.get("inference")))
            labels.append(label)
        return maps, labels


def _flatten(prefix, value, out):
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, (int, float, str, bool)) or value is None:
        out[prefix] = value


def gather(out, sweep=None):
    """Read a sweep's output folder into one tidy table (see :class:`SweepResults`).

    Parameters
    ----------
    out : str or Path
        The folder :func:`run_sweep` wrote.
    sweep : Sweep, optional
        Default: the folder's ``sweep.json``.

    Returns
    -------
    SweepResults
    """
    out = Path(out)
    if sweep is None:
        meta = out / "sweep.json"
        if not meta.exists():
            raise FileNotFoundError(f"{out} is not a sweep folder (no sweep.json); run "
                                    "`llmfmri sweep SWEEP.yaml --out DIR` first.")
        from ._run import _sweep_from_dict

        sweep = _sweep_from_dict(json.loads(meta.read_text()))
    elif not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    cell_rows, rows, summaries, behaviour_rows, measures = [], [], {}, [], {}
    for cell in sweep.cells():
        status = cell_status(out, cell)
        params = _param_columns(cell.params)
        cell_rows.append({"cell": cell.label, **params,
                          "status": status.get("status", "not run"),
                          "seconds": status.get("seconds"), "error": status.get("error")})
        if status.get("status") != "complete":
            continue
        common = {"cell": cell.label, **params}
        scores = {}
        behaviour_path = cell_dir(out, cell) / BEHAVIOUR_FILE
        if "behaviour" in sweep.steps and behaviour_path.exists():
            b = read_tsv(behaviour_path)
            scores = behaviour_columns(b)
            whole = b[b["subset"] == "all"]
            measures.update({f"{m}_{t}": (m, t) for m, t in zip(whole["measure"], whole["set"])})
            behaviour_rows.append({**common, **scores})
        summary_path = cell_dir(out, cell) / "analysis" / "summary.json"
        if not summary_path.exists():
            continue
        summary = json.loads(summary_path.read_text())
        summary["task_label"] = _task_label(cell_dir(out, cell))
        summaries[cell.label] = summary
        ident = summary.get("identification") or {}
        rep = {f"repeatability_{r['comparison'].replace(' ', '_')}_{k}": v
               for r in summary.get("repeatability", []) for k, v in r.items()
               if k != "comparison"}
        for task, info in summary["tasks"].items():
            row = {**common, "task": task}
            flat = {}
            _flatten("", {k: v for k, v in info.items() if k != "threshold"}, flat)
            row.update(flat)
            row.update({f"identification_{k}": v for k, v in ident.items()
                        if isinstance(v, (int, float, str))})
            row.update(rep)
            row.update(scores)
            rows.append(row)
    cells = pd.DataFrame(cell_rows)
    behaviour = pd.DataFrame(behaviour_rows)
    table = pd.DataFrame(rows) if rows or "networks" in sweep.steps else behaviour.copy()
    logger.info("gather: %d of %d cells complete", int((cells["status"] == "complete").sum()),
                len(cells))
    return SweepResults(sweep=sweep, out=out, cells=cells, table=table, behaviour=behaviour,
                        _summaries=summaries, _measures=measures)


def _param_columns(params):
    """A cell's parameters as table columns: a lesion value as its label and kind."""
    out = {}
    for key, value in params.items():
        if key == "lesion":
            out["lesion"] = lesion_label(value)
            out["lesion_kind"] = lesion_kind(value)
        else:
            out[key] = value
    return out


def _task_label(folder):
    try:
        return json.loads((folder / "recording.json").read_text()).get("task")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class GroupResult:
    """A second-level analysis over the cells of a sweep (cells as subjects).

    Attributes
    ----------
    task : str
    contrast : str
        ``"intercept"`` (is the effect consistent across cells?) or an axis name (a
        regression on that cell parameter).
    design : pandas.DataFrame
        One row per cell (per pair with ``paired``), indexed by the (lesioned) cell.
    cells : list of str
        The cells tested (the lesioned cells of the pairs with ``paired``).
    maps : dict of str -> UnitMap
        ``z_score``, ``stat``, ``p_value``, ``effect_size``... of the contrast.
    p_fdr : UnitMap
        FDR-adjusted two-sided p values (Benjamini & Hochberg).
    permutation : PermutationResult or None
        Sign flips (one-sample) or permutations of the regressor, max-T over units.
    summary : dict
        Units significant at FDR 0.05 and at FWER 0.05, consistency across cells (the
        fraction of cells -- or pairs -- whose effect has the group's sign, over
        significant units); ``paired``, ``lesion`` and ``n_pairs`` for a paired test.
    paired : str or None
        ``"lesion"`` when the maps tested are differences lesioned - intact.
    lesion : str or None
        The lesion's label (with ``paired``).
    pairs : pandas.DataFrame or None
        With ``paired``: one row per pair tested (``cell``, ``intact``, ...; see
        :func:`pair_cells`).
    """

    task: str
    contrast: str
    design: pd.DataFrame
    cells: list
    maps: dict
    p_fdr: object
    permutation: object
    summary: dict
    paired: object = None
    lesion: object = None
    pairs: object = None

    @property
    def name(self):
        """What was tested, in words: ``"intercept"``, ``"seed"``, ``"core - intact"``..."""
        if self.paired is None:
            return self.contrast
        base = f"{self.lesion} - intact"
        return base if self.contrast == "intercept" else f"{base} {self.contrast}"


def _key(value):
    """A cell parameter as a hashable matching key (None and NaN alike)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, (str, int, float, bool)) else repr(value)


def pair_cells(cells, by, *, lesion=None, role="lesion"):
    """Pair each lesioned cell with the intact cell that has the same values on ``by``.

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per cell, as :attr:`SweepResults.cells`: ``cell``, ``lesion`` (the
        label, ``"none"`` for intact cells), ``lesion_role`` and the ``by`` columns.
    by : list of str
        The other axes (every axis but ``lesion``), matched exactly (a missing value
        matches a missing value).
    lesion : str, optional
        The lesion's label; needed when the cells hold several lesions.
    role : {"lesion", "control"}, default="lesion"
        Pair the lesion's cells, or its control draws' cells.

    Returns
    -------
    pandas.DataFrame
        One row per pair, in the cells' order: ``cell`` (lesioned), ``intact``,
        ``lesion``, ``lesion_role``, ``draw`` and the ``by`` columns. Lesioned cells
        without an intact partner are left out (logged).

    Raises
    ------
    DataError
        Without lesion columns, for an unknown ``lesion``, several lesions and no
        ``lesion``, or no pair at all.

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.sweeps import pair_cells
    >>> cells = pd.DataFrame({"cell": ["s0none", "s0core", "s1none", "s1core"],
    ...                       "seed": [0, 0, 1, 1], "lesion": ["none", "core"] * 2,
    ...                       "lesion_role": ["intact", "lesion"] * 2, "draw": 0})
    >>> pair_cells(cells, ["seed"])[["cell", "intact", "seed"]].values.tolist()
    [['s0core', 's0none', 0], ['s1core', 's1none', 1]]
    """
    check_option("role", role, ("lesion", "control"))
    missing = [c for c in ("cell", "lesion", "lesion_role") + tuple(by) if c not in cells]
    if missing:
        raise DataError(f"Pairing cells needs the columns {missing} (a sweep with a lesion "
                        f"axis); the cells have {list(cells.columns)}.")
    chosen = cells[cells["lesion_role"] == role]
    labels = list(dict.fromkeys(chosen["lesion"]))
    if not labels:
        raise DataError(f"No cell has lesion_role {role!r}: nothing to pair.")
    if lesion is None:
        if len(labels) > 1:
            raise DataError(f"The sweep has several lesions ({labels}); choose one with "
                            "lesion=...")
        lesion = labels[0]
    elif lesion not in labels:
        raise DataError(f"No {role} cell of lesion {lesion!r}; lesions: {labels}."
                        + did_you_mean(str(lesion), [str(x) for x in labels]))
    chosen = chosen[chosen["lesion"] == lesion]
    intact = cells[cells["lesion_role"] == "intact"]
    partner = {}
    for label, *values in intact[["cell", *by]].itertuples(index=False):
        partner.setdefault(tuple(_key(v) for v in values), label)
    rows, orphans = [], []
    for row in chosen.to_dict("records"):
        key = tuple(_key(row[b]) for b in by)
        if key not in partner:
            orphans.append(row["cell"])
            continue
        rows.append({"cell": row["cell"], "intact": partner[key], "lesion": lesion,
                     "lesion_role": role, "draw": row.get("draw", 0),
                     **{b: row[b] for b in by}})
    if orphans:
        logger.warning("pair_cells: %d %s cells of %r have no intact cell with the same other "
                       "axes and are left out: %s", len(orphans), role, lesion, orphans)
    if not rows:
        raise DataError(f"No {role} cell of lesion {lesion!r} has an intact partner (the cell "
                        f"with lesion none and the same {by}).")
    return pd.DataFrame(rows)


def _paired_maps(results, maps, labels, lesion):
    """Differences lesioned - intact of the task's maps, one per pair of complete cells."""
    by = [a for a in results.sweep.axes if a != "lesion"]
    pairs = pair_cells(results.cells, by, lesion=lesion)
    have = dict(zip(labels, maps))
    complete = pairs["cell"].isin(have) & pairs["intact"].isin(have)
    if not complete.all():
        logger.warning("group_analysis: %d pairs are left out (a cell is not complete): %s",
                       int((~complete).sum()), pairs.loc[~complete, "cell"].tolist())
    pairs = pairs[complete].reset_index(drop=True)
    lesion = str(pairs["lesion"].iloc[0]) if len(pairs) else lesion
    diffs = [have[c]._replace(have[c].values - have[i].values,
                              contrast=f"{have[c].contrast} ({lesion} - intact)")
             for c, i in zip(pairs["cell"], pairs["intact"])]
    return diffs, list(pairs["cell"]), pairs, lesion


def group_analysis(results, task, *, regress=None, paired=None, lesion=None, cells=None,
                   alpha=0.05, n_permutations=1000, random_state=0):
    """Second-level GLM over the cells of a sweep, with FDR and permutation inference.

    Parameters
    ----------
    results : SweepResults
    task : str
    regress : str, optional
        An axis with numeric values (a training step, a rank fraction...): the test is
        its slope across cells (centred, with an intercept). Default: a one-sample test
        of the task's effect across cells.
    paired : {"lesion"}, optional
        Test the difference maps lesioned - intact: each cell of the lesion is paired
        with the intact cell (``lesion: none``) that has the same values on every other
        axis (:func:`pair_cells`), and the one-sample test over the differences is the
        paired t test across pairs (FDR, and sign flips of whole pairs for max-T). With
        ``regress``: the slope of the difference on that axis.
    lesion : str, optional
        With ``paired``: the lesion's label, needed when the sweep has several lesions.
    cells : list of str, optional
        Only these cells (labels) are subjects, e.g. the intact cells of a sweep with a
        lesion axis (``results.cells.query("lesion_role == 'intact'")["cell"]``): a
        one-sample test over intact and lesioned cells together mixes two conditions.
        Default: every complete cell. With ``paired``, the pairs whose lesioned cell is
        listed.
    alpha : float, default=0.05
    n_permutations : int, default=1000
        Sign flips (one-sample: every pattern when ``2**n_cells - 1`` is smaller) or
        permutations of the regressor; 0 skips the permutation test.
    random_state : int, default=0

    Returns
    -------
    GroupResult

    Raises
    ------
    DataError
        With fewer than 2 complete cells -- or pairs -- (3 for a regression); for an
        axis that is not one; with ``paired``, for a sweep without a lesion axis or a
        lesion without intact partners.
    ValueError
        For an unknown ``paired``.

    Examples
    --------
    >>> from llmfmri.sweeps import group_analysis
    >>> g = group_analysis(res, "science", paired="lesion")   # doctest: +SKIP
    >>> g.summary["n_pairs"], g.maps["z_score"]               # doctest: +SKIP
    """
    from ..glm import SecondLevelGLM, correct

    maps, labels = results.maps(task, kind="effect_size")
    if cells is not None:
        cells = [str(c) for c in cells]
        unknown = sorted(set(cells) - set(results.cells["cell"]))
        if unknown:
            raise DataError(f"cells {unknown} are not cells of the sweep; cells: "
                            f"{list(results.cells['cell'])}."
                            + did_you_mean(unknown[0], list(results.cells["cell"])))
        keep = set(cells)
        if paired is None:
            maps, labels = zip(*[(m, c) for m, c in zip(maps, labels) if c in keep]) \
                if keep & set(labels) else ((), ())
            maps, labels = list(maps), list(labels)
    pairs = None
    what = "complete cells"
    if paired is not None:
        check_option("paired", paired, PAIRINGS)
        maps, labels, pairs, lesion = _paired_maps(results, maps, labels, lesion)
        if cells is not None:
            chosen = [i for i, c in enumerate(labels) if c in keep]
            maps, labels = [maps[i] for i in chosen], [labels[i] for i in chosen]
            pairs = pairs.iloc[chosen].reset_index(drop=True)
        what = "pairs of complete cells (lesioned, intact)"
    n = len(maps)
    if n < (3 if regress else 2):
        raise DataError(f"A group analysis of {task!r} needs at least {3 if regress else 2} "
                        f"{what}, but the sweep has {n}.")
    design = pd.DataFrame({"intercept": np.ones(n)}, index=pd.Index(labels, name="cell"))
    contrast = "intercept"
    if regress is not None:
        if regress not in results.cells.columns:
            raise DataError(f"{regress!r} is not an axis of the sweep "
                            f"({list(results.sweep.axes)}).")
        values = results.cells.set_index("cell").loc[labels, regress].astype(float).to_numpy()
        design[regress] = values - values.mean()
        contrast = regress
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # the same numbers in any process (BLAS reductions)
        glm = SecondLevelGLM().fit(maps, design.reset_index(drop=True))
    out = glm.compute_contrast(contrast, output_type="all")
    z = out["z_score"]
    p_two = out["p_value"]._replace(
        np.minimum(1.0, 2 * np.minimum(out["p_value"].values, 1 - out["p_value"].values)))
    p_fdr = correct(p_two, "fdr")
    perm = glm.permutation_test(contrast, n_permutations=n_permutations,
                                random_state=random_state) if n_permutations else None
    Y = np.vstack([m.values for m in maps])
    sig = p_fdr.values <= alpha
    sign = np.sign(z.values)
    if regress is None:
        agree = (np.sign(Y) == sign[None, :]).mean(axis=0)
    else:
        agree = np.full(Y.shape[1], np.nan)
    summary = {
        "task": task, "contrast": contrast, "n_cells": n,
        "n_units_fdr": int(sig.sum()),
        "n_units_fwer": int((perm.p_fwer <= alpha).sum()) if perm is not None else None,
        "n_permutations": int(perm.n_permutations) if perm is not None else 0,
        "max_abs_z": float(np.max(np.abs(z.values))),
        "consistency_significant_units": (float(np.mean(agree[sig])) if regress is None
                                          and sig.any() else None),
        "consistency_all_units": float(np.mean(agree)) if regress is None else None,
    }
    if paired is not None:
        summary.update(paired=paired, lesion=lesion, n_pairs=n)
    return GroupResult(task=task, contrast=contrast, design=design, cells=labels, maps=out,
                       p_fdr=p_fdr, permutation=perm, summary=summary, paired=paired,
                       lesion=lesion, pairs=pairs)


def compare_lesion_controls(results, *, lesion=None):
    """Each lesion's behaviour effect against its control draws' effects.

    For every lesion with controls and every combination of the other axes (a model,
    a seed...), each behaviour column (:attr:`SweepResults.behaviour`): the lesion's
    effect -- lesioned - intact, the intact cell being the one with ``lesion: none``
    and the same other axes -- against the control draws' effects, with
    :func:`llmfmri.lesions.compare_to_controls`. A deficit is a higher perplexity
    (``alternative="greater"``) or a lower accuracy (``"less"``). Without an intact
    cell the raw values are compared (``intact`` is NaN and ``effect`` the lesioned
    value; the empirical p is the same).

    Parameters
    ----------
    results : SweepResults
    lesion : str, optional
        Only this lesion (label).

    Returns
    -------
    pandas.DataFrame
        One row per lesion x other axes x behaviour column: the other axes, ``lesion``,
        ``measure``, ``set``, ``column``, ``intact``, ``lesioned``, ``effect``,
        ``relative_effect``, ``control_mean``, ``control_median``, ``control_sd``,
        ``control_min``, ``control_max``, ``n_controls``, ``z``, ``p_empirical``
        (``(1 + #controls at least as extreme) / (1 + n)``), ``alternative``. Empty
        when no lesion has controls or the sweep has no behaviour step.
    """
    from ..lesions import compare_to_controls

    b = results.behaviour
    if b.empty or "lesion_role" not in b or not results.measures:
        return pd.DataFrame()
    by = [a for a in results.sweep.axes if a != "lesion"]
    keyed = b.assign(_key=[tuple(_key(v) for v in r) for r in b[by].itertuples(index=False)]) \
        if by else b.assign(_key=[()] * len(b))
    intact = {k: row for k, row in zip(keyed["_key"], keyed.to_dict("records"))
              if row["lesion_role"] == "intact"}
    rows = []
    lesioned = keyed[keyed["lesion_role"].isin(["lesion", "control"])]
    for label in dict.fromkeys(lesioned["lesion"]):
        if lesion is not None and label != lesion:
            continue
        of = lesioned[lesioned["lesion"] == label]
        for key in dict.fromkeys(of["_key"]):
            g = of[of["_key"] == key]
            main, ctrl = g[g["lesion_role"] == "lesion"], g[g["lesion_role"] == "control"]
            if main.empty or ctrl.empty:
                continue
            base_row = intact.get(key)
            for column, (measure, set_) in results.measures.items():
                if column not in g:
                    continue
                value = float(main[column].iloc[0])
                base = float(base_row[column]) if base_row is not None else float("nan")
                ref = base if np.isfinite(base) else 0.0
                alternative = "greater" if measure.endswith("perplexity") else "less"
                cmp = compare_to_controls(value - ref, ctrl[column].to_numpy(float) - ref,
                                          alternative=alternative)
                row = {**dict(zip(by, g[by].iloc[0])), "lesion": label, "measure": measure,
                       "set": set_, "column": column, "intact": base, "lesioned": value,
                       "effect": cmp.pop("effect"),
                       "relative_effect": (value - base) / base if np.isfinite(base) and base
                       else float("nan")}
                row.update(cmp)
                rows.append(row)
    return pd.DataFrame(rows)


def save_sweep_tables(results, groups, out=None, *, controls=None, overwrite=True):
    """Write the sweep's tables and, per group analysis, its maps and ``group.tsv``.

    ``cells.tsv``, ``sweep.tsv``, ``behaviour.tsv`` (with the behaviour step), and in
    ``group/``: the maps of each group analysis, named like any other map
    (``llmfmri.io``), e.g. ``task-<t>_contrast-<task label>GroupIntercept_stat-z_statmap
    .nii.gz`` (a paired analysis: ``...GroupCoreMinusIntact...``), ``group.tsv`` (one row
    per analysis) and ``lesion-controls.tsv`` (:func:`compare_lesion_controls`). The
    tables are the sweep's own (rewritten when the sweep is gathered again).

    Parameters
    ----------
    results : SweepResults
    groups : list of GroupResult
    out : str or Path, optional
        Default: the sweep's folder.
    controls : pandas.DataFrame, optional
        :func:`compare_lesion_controls` of the results.
    overwrite : bool, default=True

    Returns
    -------
    list of pathlib.Path
    """
    from ..io import OutputSet, contrast_label, statmap_path

    out = Path(out or results.out)
    files = OutputSet(out, overwrite=overwrite)
    files.add_tsv("cells.tsv", results.cells)
    files.add_tsv("sweep.tsv", results.table)
    if not results.behaviour.empty:
        files.add_tsv(BEHAVIOUR_FILE, results.behaviour)
    rows = []
    for g in groups:
        first = next(iter(results._summaries.values()))
        task_label = first["tasks"][g.task]["label"]
        label = contrast_label(f"{task_label} group {g.name}")
        for kind, m in g.maps.items():
            path = statmap_path(out / "group", label, kind, m.stat_type,
                                task=first.get("task_label"))
            files.add_nifti(Path("group") / path.name, m.to_nifti)
        rows.append({**g.summary, "label": label})
    if rows:
        files.add_tsv(Path("group") / "group.tsv", pd.DataFrame(rows))
    if controls is not None and not controls.empty:
        files.add_tsv(Path("group") / "lesion-controls.tsv", controls)
    return files.write()
