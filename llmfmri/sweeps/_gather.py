"""Gathering a sweep: one tidy table over cells, maps stacked for the second level."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import logger
from ..exceptions import DataError
from ._run import cell_dir, cell_status
from ._spec import Sweep, load_sweep

__all__ = ["gather", "SweepResults", "group_analysis", "GroupResult"]


@dataclass
class SweepResults:
    """Everything the cells of a sweep wrote, gathered.

    Attributes
    ----------
    sweep : Sweep
    out : Path
    cells : pandas.DataFrame
        One row per cell: ``cell``, every axis, ``status``, ``seconds``, ``error``.
    table : pandas.DataFrame
        One row per complete cell and task: the cell's parameters and every number of
        its ``summary.json`` (``n_units``, ``token_level_n_units``, identification
        ``accuracy``, ``chance``, ``p_value``, repeatability...).
    """

    sweep: Sweep
    out: Path
    cells: pd.DataFrame
    table: pd.DataFrame
    _summaries: dict = field(default_factory=dict, repr=False)

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
    cell_rows, rows, summaries = [], [], {}
    for cell in sweep.cells():
        status = cell_status(out, cell)
        cell_rows.append({"cell": cell.label, **cell.params,
                          "status": status.get("status", "not run"),
                          "seconds": status.get("seconds"), "error": status.get("error")})
        summary_path = cell_dir(out, cell) / "analysis" / "summary.json"
        if status.get("status") != "complete" or not summary_path.exists():
            continue
        summary = json.loads(summary_path.read_text())
        summary["task_label"] = _task_label(cell_dir(out, cell))
        summaries[cell.label] = summary
        common = {"cell": cell.label, **cell.params}
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
            rows.append(row)
    cells = pd.DataFrame(cell_rows)
    table = pd.DataFrame(rows)
    logger.info("gather: %d of %d cells complete", len(summaries), len(cells))
    return SweepResults(sweep=sweep, out=out, cells=cells, table=table, _summaries=summaries)


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
        One row per cell.
    cells : list of str
    maps : dict of str -> UnitMap
        ``z_score``, ``stat``, ``p_value``, ``effect_size``... of the contrast.
    p_fdr : UnitMap
        FDR-adjusted two-sided p values (Benjamini & Hochberg).
    permutation : PermutationResult or None
        Sign flips (one-sample) or permutations of the regressor, max-T over units.
    summary : dict
        Units significant at FDR 0.05 and at FWER 0.05, consistency across cells (the
        fraction of cells whose effect has the group's sign, over significant units).
    """

    task: str
    contrast: str
    design: pd.DataFrame
    cells: list
    maps: dict
    p_fdr: object
    permutation: object
    summary: dict


def group_analysis(results, task, *, regress=None, alpha=0.05, n_permutations=1000,
                   random_state=0):
    """Second-level GLM over the cells of a sweep, with FDR and permutation inference.

    Parameters
    ----------
    results : SweepResults
    task : str
    regress : str, optional
        An axis with numeric values (a training step, a rank fraction...): the test is
        its slope across cells (centred, with an intercept). Default: a one-sample test
        of the task's effect across cells.
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
        With fewer than 2 complete cells (3 for a regression).
    """
    from ..glm import SecondLevelGLM, correct

    maps, labels = results.maps(task, kind="effect_size")
    n = len(maps)
    if n < (3 if regress else 2):
        raise DataError(f"A group analysis of {task!r} needs at least {3 if regress else 2} "
                        f"complete cells, but the sweep has {n}.")
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
    return GroupResult(task=task, contrast=contrast, design=design, cells=labels, maps=out,
                       p_fdr=p_fdr, permutation=perm, summary=summary)


def save_sweep_tables(results, groups, out=None, *, overwrite=True):
    """Write ``cells.tsv``, ``sweep.tsv`` and, per group analysis, its maps and ``group.tsv``.

    Group maps are named like any other map (``llmfmri.io``), e.g.
    ``group/task-<t>_contrast-<task label>GroupIntercept_stat-z_statmap.nii.gz``.
    The tables are the sweep's own (rewritten when the sweep is gathered again).

    Returns
    -------
    list of pathlib.Path
    """
    from ..io import OutputSet, contrast_label, statmap_path

    out = Path(out or results.out)
    files = OutputSet(out, overwrite=overwrite)
    files.add_tsv("cells.tsv", results.cells)
    files.add_tsv("sweep.tsv", results.table)
    rows = []
    for g in groups:
        first = next(iter(results._summaries.values()))
        task_label = first["tasks"][g.task]["label"]
        label = contrast_label(f"{task_label} group {g.contrast}")
        for kind, m in g.maps.items():
            path = statmap_path(out / "group", label, kind, m.stat_type,
                                task=first.get("task_label"))
            files.add_nifti(Path("group") / path.name, m.to_nifti)
        rows.append({**g.summary, "label": label})
    if rows:
        files.add_tsv(Path("group") / "group.tsv", pd.DataFrame(rows))
    return files.write()
