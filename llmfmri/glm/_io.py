"""Writing GLM results: the one writer of statistical maps, their unit tables and designs."""

from __future__ import annotations

import numpy as np

from .._utils import check_option, logger
from .._utils.estimator import check_is_fitted
from ..io import (OutputSet, check_unique_labels, design_path, stat_label, statmap_path,
                  statmap_stem)
from ._correct import correct
from ._unitmap import contrast_to_maps

__all__ = ["save_glm_to_bids", "contrast_table"]

_CORRECTIONS = ("fdr", "bonferroni")


def contrast_table(maps, *, correction="fdr", contrast=None):
    """One row per unit with every statistic of a contrast (the ``_statmap.tsv`` table).

    Parameters
    ----------
    maps : dict of output_type -> UnitMap
        As returned by ``compute_contrast(..., output_type="all")``.
    correction : {"fdr", "bonferroni"}, default="fdr"
        Adds ``p_<correction>``: of the two-sided p for t, of p for F.
    contrast : str, optional
        Written in a first ``contrast`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``[contrast,] column, site, layer, component, index, z, effect,
        variance, t|F, p[, p_two_sided], p_<correction>``.
    """
    check_option("correction", correction, _CORRECTIONS)
    stat = maps["stat"]
    df = maps["z_score"].to_frame("z")
    if maps["effect_size"].values.ndim == 1:
        df["effect"] = maps["effect_size"].values
        df["variance"] = maps["effect_variance"].values
    df[stat.stat_type] = stat.values
    df["p"] = maps["p_value"].values
    if stat.stat_type == "t":
        p2 = maps["p_two_sided"] if "p_two_sided" in maps else _two_sided(stat)
        df["p_two_sided"] = p2
        df[f"p_{correction}"] = correct(np.asarray(p2), correction)
    else:
        df[f"p_{correction}"] = correct(df["p"].to_numpy(), correction)
    if contrast is not None:
        df.insert(0, "contrast", contrast)
    return df


def _two_sided(stat_map):
    from ._stats import t_sf

    return np.minimum(2.0 * t_sf(np.abs(stat_map.values), stat_map.dof), 1.0)


def _as_contrasts(contrasts):
    """label -> (text, contrast_def) from a string, a list, or a dict label -> definition."""
    if isinstance(contrasts, str):
        contrasts = [contrasts]
    if isinstance(contrasts, dict):
        labels = check_unique_labels({lab: str(d) for lab, d in contrasts.items()})
        return {labels[str(d)]: (str(d), d) for d in contrasts.values()}
    defs = list(contrasts)
    texts = ["; ".join(d) if isinstance(d, (list, tuple)) else str(d) for d in defs]
    labels = check_unique_labels(texts)
    return {labels[t]: (t, d) for t, d in zip(texts, defs)}


def save_glm_to_bids(glm, contrasts, out_dir, *, task=None, correction="fdr", overwrite=False,
                     provenance=None):
    """Write a fitted first-level GLM's contrasts: maps, unit tables, sidecars and designs.

    The single writer of GLM outputs (nilearn's ``save_glm_to_bids``), used by the
    library, ``llmfmri glm`` and the main job. For each contrast, with ``label``
    from :func:`llmfmri.io.contrast_label` (or the dict key):

    - ``[task-<t>_]contrast-<label>_stat-{z,t|F,effect,variance,p}_statmap.nii.gz``
      (NIfTI intent codes: z score, t test with dof, f test, estimate, p value);
    - ``..._statmap.tsv``: one row per unit (see :func:`contrast_table`);
    - ``..._statmap.json``: the contrast, stat type, dof, GLM settings, runs, provenance;

    and ``[task-<t>_]run-<k>_design.tsv`` per run. Every target is checked (name
    collisions, existing files) before the first file is written.

    Parameters
    ----------
    glm : FirstLevelGLM
        Fitted, with units (from a Recording, or ``units=`` at fit).
    contrasts : str, list or dict
        Contrast definitions (``"a - b"``; a list of expressions is an F test
        when nested: ``[["a", "b"]]``), or a dict ``{label: definition}``.
    out_dir : str or Path
    task : str, optional
        The ``task-`` entity (e.g. the recording's task).
    correction : {"fdr", "bonferroni"}, default="fdr"
    overwrite : bool, default=False
    provenance : dict, optional
        Extra fields for every sidecar (e.g. the recording's path).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Raises
    ------
    llmfmri.exceptions.OutputNameError
        Two contrasts that would share a file name.
    FileExistsError
        An output exists and ``overwrite`` is False (nothing is written).
    """
    check_is_fitted(glm)
    check_option("correction", correction, _CORRECTIONS)
    files = OutputSet(out_dir, overwrite=overwrite)
    for label, (text, cdef) in _as_contrasts(contrasts).items():
        con = glm.contrast(cdef)
        maps = contrast_to_maps(con, glm.units_, "all", inference="token")
        if con.stat_type == "t":
            maps["p_two_sided"] = con.p_value(two_sided=True)
        for kind in ("z_score", "stat", "effect_size", "effect_variance", "p_value"):
            path = statmap_path(out_dir, label, kind, con.stat_type, task=task)
            files.add_nifti(path.name, (lambda m=maps[kind]: m.to_nifti()))
        stem = statmap_stem(label, task=task)
        files.add_tsv(f"{stem}_statmap.tsv",
                      contrast_table(maps, correction=correction, contrast=text))
        files.add_json(f"{stem}_statmap.json", {
            "contrast": text, "label": label, "stat_type": con.stat_type,
            "stat": stat_label("stat", con.stat_type), "dof": con.dof,
            "inference": "token", "runs": [_plain(r) for r in glm.runs_],
            "noise_model": glm.noise_model, "hrf_model": glm.hrf_model,
            "drift_model": glm.drift_model, "drift_order": glm.drift_order,
            "confounds": glm.confounds, "bins": glm.bins, "first_frame": glm.first_frame,
            "design_columns": [list(map(str, d.columns)) for d in glm.design_matrices_],
            "p": "one-sided (upper tail) for t; p_two_sided and the corrected p are two-sided",
            "correction": correction, **(provenance or {}),
        })
    for run, dm in zip(glm.runs_, glm.design_matrices_):
        files.add_tsv(design_path(out_dir, run, task=task).name, dm, index=True,
                      same_ok=True)
    written = files.write()
    logger.info("save_glm_to_bids: wrote %d files to %s", len(written), out_dir)
    return written


def _plain(value):
    return value.item() if hasattr(value, "item") else value
