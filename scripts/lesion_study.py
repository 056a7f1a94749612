"""Lesion studies on the default model: the numbers of docs/results/lesions.md.

Four parts (``--parts``, default all), each written under ``--out`` (default ``runs/lesion``):

``localizer``
    :func:`llmfmri.lesions.localizer_study`: the language localizer (sentences vs non-word
    lists, last-token frames of ``resid_post``), Welch t of |activation| per unit (the seed's
    statistic), the top 1 % of units zeroed, against ``--n-random`` random networks with the
    same per-layer counts (drawn outside the network), ``--n-magnitude`` more also matched on
    mean |activation| (``--magnitude-bins`` quantile bins per layer, default 50) and the
    least selective 1 % (the bottom of the same statistic). Behaviour: perplexity on plain
    English (the domains paradigm's science, fiction and legal passages), code, the
    localizer's non-word lists and random strings; accuracy of greedy answers, log-probability
    of the gold answers and (theory_of_mind) forced-choice accuracy on multiple_demand,
    theory_of_mind and the template's capitals and arithmetic. Writes ``OUT/localizer/``
    (tables, network, summary.json).

``dissociation``
    Functional networks of the main job's recording (``runs/demo``, functional_networks,
    prompt-level maps of each task vs control), cross-validated over its three runs: for each
    held-out run, each task's map is made on the other two runs, its top 1 % of units is
    zeroed (and ``--n-dissociation-controls`` random networks with the same per-layer counts),
    and the NLL per token of the held-out run's prompts of every task (8 per task) is scored.
    Every item is scored under networks that were not mapped on it. Writes
    ``OUT/dissociation/`` (per-item deficits, cells, contrasts, double dissociations).

``capped``
    Five more magnitude-matched controls for the localizer lesion that never draw a unit larger
    than the largest lesioned unit of its layer (the magnitude-matched draws of ``localizer``
    can take the model's "massive activation" units, e.g. dimension 17 of layers 24-29, which
    the language network does not contain), scored like the others. Needs ``localizer``'s
    output. Writes ``OUT/capped/``.

``contrast``
    The language localizer recorded again under the language lesion (zero, top 1 %) and
    compared with the intact recording in the paired, prompt-level GLM
    (:func:`llmfmri.lesions.lesion_contrast`): how much each condition's activity changes
    downstream, where, and whether sentences change more than non-word lists. Writes
    ``OUT/contrast/``.

Usage (from the project root; on 2 shared CPU cores with one torch thread: about 40
minutes for all three)::

    .venv/bin/python scripts/lesion_study.py --out runs/lesion

Prints the tables of docs/results/lesions.md (markdown).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["political_science", "medical_imaging", "paleontology", "archeology", "pathology",
         "random_strings"]


def _md(df, floatfmt=".3g"):
    def fmt(x):
        if isinstance(x, (float, np.floating)):
            return "n/a" if not np.isfinite(x) else format(float(x), floatfmt)
        return str(x)
    cols = [" ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c)
            for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


def _write(out, name, table):
    from llmfmri.io import table_path, write_tsv

    write_tsv(table, table_path(out, name), overwrite=True)


def part_localizer(model, out, args):
    from llmfmri.lesions import localizer_study

    t0 = time.time()
    study = localizer_study(
        model, fraction=0.01, n_random=args.n_random, n_magnitude=args.n_magnitude,
        magnitude_bins=args.magnitude_bins,
        localizer_recording=out / "recordings" / "localizer", out=out / "localizer",
        overwrite=True, random_state=args.seed, batch_size=8, verbose=1)
    print(f"\n## localizer study ({time.time() - t0:.0f} s)\n")
    print(study.network.describe())
    prof = study.network.layer_profile()
    print("units per layer:", prof["n_units"].tolist())
    ctab = study.controls_table()
    print(_md(ctab.groupby("kind", sort=False).agg(
        sets=("draw", "size"), n_units=("n_units", "first"), overlap=("overlap", "max"),
        same_counts=("same_per_site_counts", "all"), mean_magnitude=("mean_magnitude", "mean"),
        median_magnitude=("median_magnitude", "mean"),
        median_layer_percentile=("median_layer_percentile", "mean")).reset_index()))
    print()
    beh = study.behaviour
    show = beh[beh["subset"] == "all"].copy()
    agg = show.groupby(["condition", "measure", "set"], sort=False).agg(
        value=("value", "mean"), median=("value", "median"), sd=("value", "std"),
        min=("value", "min"), max=("value", "max"), ci_low=("ci_low", "first"),
        ci_high=("ci_high", "first"), n=("value", "size")).reset_index()
    print(_md(agg))
    print()
    summ = study.summary
    cols = ["measure", "set", "subset", "control", "intact", "lesion", "effect",
            "relative_effect", "control_mean", "control_median", "control_sd", "control_min",
            "control_max", "n_controls", "p_empirical"]
    print(_md(summ[cols]))
    return study


def _fn_texts(rec):
    """The schedule of the recording's own paradigm (saved with it): which prompt is in which
    run."""
    from llmfmri.paradigm import load_paradigm

    par = load_paradigm(rec.paradigm_path)
    return par, par.schedule()


def part_dissociation(model, out, args):
    import llmfmri.networks as nw
    from llmfmri.lesions import dissociation_table, lesion, random_controls, score_texts
    from llmfmri.recording import load_recording

    rec = load_recording(ROOT / "runs" / "demo")
    par, sched = _fn_texts(rec)
    conds = TASKS + ["control"]
    rows, t0 = [], time.time()
    for held in rec.runs:
        train = [r for r in rec.runs if r != held]
        maps = nw.task_maps(rec, {t: f"{t} - control" for t in TASKS}, runs=train)
        test = sched[sched["run"] == held]
        texts = {c: test.loc[test["trial_type"] == c, "prompt"].drop_duplicates().tolist()
                 for c in conds}
        ids = {c: test.loc[test["trial_type"] == c, "prompt_id"].drop_duplicates().tolist()
               for c in conds}
        base = score_texts(model, texts, batch_size=16)
        for t in TASKS:
            net = nw.top_k(maps[t], fraction=0.01, label=t)
            ctrls = random_controls(net, args.n_dissociation_controls,
                                    random_state=args.seed + held)
            for draw, n in [("lesion", net)] + [(f"random-{k}", c) for k, c in
                                                enumerate(ctrls)]:
                with lesion(model, n):
                    les = score_texts(model, texts, batch_size=16)
                d = (les["nll"] - base["nll"]) / base["n_tokens"]
                for s, item, dv, bn in zip(les["text_set"], les["item"], d,
                                           base["nll"] / base["n_tokens"]):
                    rows.append({"fold": held, "lesion": t, "draw": draw, "task": s,
                                 "item": f"{held}:{ids[s][item]}", "deficit": float(dv),
                                 "intact_nll_per_token": float(bn)})
        print(f"fold {held} done ({time.time() - t0:.0f} s)", file=sys.stderr)
    scores = pd.DataFrame(rows)
    res = dissociation_table(scores, own={t: t for t in TASKS}, random_state=args.seed)
    dest = out / "dissociation"
    dest.mkdir(parents=True, exist_ok=True)
    _write(dest, "dissociation-items", scores)
    _write(dest, "dissociation-cells", res.cells)
    _write(dest, "dissociation-contrasts", res.contrasts)
    _write(dest, "dissociation-double", res.double)
    print(f"\n## dissociation ({time.time() - t0:.0f} s)\n")
    print("ΔNLL per token (nats), lesion - intact, mean over items:\n")
    print(_md(res.matrix("deficit").reset_index(), ".3f"))
    print("\nspecific deficit (lesion - median of random controls):\n")
    print(_md(res.matrix("specific_deficit").reset_index(), ".3f"))
    print("\nempirical p against the random controls (own task marked in cells):\n")
    print(_md(res.matrix("p_empirical").reset_index(), ".3f"))
    print()
    print(_md(res.contrasts[["lesion", "own_task", "other_task", "deficit_own", "deficit_other",
                             "difference", "specific_difference", "t", "dof", "p"]], ".3g"))
    print()
    print(_md(res.double[["lesion_a", "lesion_b", "A_on_a", "A_on_b", "B_on_a", "B_on_b",
                          "interaction", "t", "dof", "p"]], ".3g"))
    return res


def part_capped(model, out, args):
    from llmfmri.io import read_tsv
    from llmfmri.lesions import (DEFAULT_TASKS, behaviour_table, default_text_sets, lesion,
                                 localizer_map, random_controls, score_behaviour,
                                 unit_magnitude)
    from llmfmri.networks import top_k
    from llmfmri.recording import load_recording

    t0 = time.time()
    rec = load_recording(out / "recordings" / "localizer")
    net = top_k(localizer_map(rec, "sentences - nonwords"), fraction=0.01,
                label="languageLocalizerTop")
    mag = unit_magnitude(rec).values
    sites = rec.units.table["site"].to_numpy()
    avoid = np.zeros(mag.size, dtype=bool)
    for site in dict.fromkeys(sites):
        idx = np.flatnonzero(sites == site)
        cap = mag[idx][net.mask[idx]].max() if net.mask[idx].any() else np.inf
        avoid[idx] = mag[idx] > cap
    ctrls = random_controls(net, 5, avoid=avoid, magnitude=mag, n_bins=args.magnitude_bins,
                            random_state=args.seed + 2, label="capped")
    parts = []
    for k, c in enumerate(ctrls):
        with lesion(model, c):
            items = score_behaviour(model, texts=default_text_sets(), tasks=DEFAULT_TASKS)
        items.insert(0, "draw", k)
        items.insert(0, "condition", "capped")
        parts.append(items)
        print(f"capped {k} scored ({time.time() - t0:.0f} s)", file=sys.stderr)
    items = pd.concat(parts, ignore_index=True)
    old = read_tsv(out / "localizer" / "lesion-items.tsv")
    both = pd.concat([old[old["condition"].isin(["intact", "lesion", "magnitude"])], items],
                     ignore_index=True)
    beh = behaviour_table(both, random_state=args.seed)
    dest = out / "capped"
    dest.mkdir(parents=True, exist_ok=True)
    _write(dest, "capped-items", items)
    _write(dest, "capped-behaviour", beh)
    info = pd.DataFrame([{"draw": k, "n_units": c.n_units, "avoided": int(avoid.sum()),
                          "mean_magnitude": float(mag[c.columns].mean()),
                          "median_magnitude": float(np.median(mag[c.columns])),
                          "max_magnitude": float(mag[c.columns].max())}
                         for k, c in enumerate(ctrls)])
    _write(dest, "capped-controls", info)
    print(f"\n## capped magnitude-matched controls ({time.time() - t0:.0f} s)\n")
    print(f"units never drawn: {int(avoid.sum())}; language network: mean |activation| "
          f"{mag[net.columns].mean():.1f}, median {np.median(mag[net.columns]):.1f}, largest "
          f"{mag[net.columns].max():.1f}")
    print(_md(info))
    print()
    g = beh[(beh["subset"] == "all") & beh["measure"].str.endswith("perplexity")].copy()
    base = g[g["condition"] == "intact"].set_index(["measure", "set"])["value"]
    g["dnll"] = np.log(g["value"].to_numpy() / base.loc[list(zip(g["measure"], g["set"]))]
                       .to_numpy())
    table = g.groupby(["measure", "set", "condition"], sort=False)["dnll"].agg(
        ["median", "min", "max"]).unstack("condition")
    print(_md(table.reset_index(), ".3g"))
    return ctrls


def part_contrast(model, out, args):
    from llmfmri.lesions import lesion, lesion_contrast, localizer_map
    from llmfmri.networks import top_k
    from llmfmri.recording import load_recording, record

    t0 = time.time()
    intact = load_recording(out / "recordings" / "localizer")
    net = top_k(localizer_map(intact, "sentences - nonwords"), fraction=0.01, label="language")
    with lesion(model, net):
        les = record(model, "language_localizer", out=out / "recordings" / "localizer-lesioned",
                     progress=False)
    res = lesion_contrast(intact, les)
    summ = res.summary(exclude=net)
    dest = out / "contrast"
    dest.mkdir(parents=True, exist_ok=True)
    _write(dest, "contrast-summary", summ)
    profiles = pd.concat([res.layer_profile(c, exclude=net) for c in res.contrasts()])
    _write(dest, "contrast-layers", profiles)
    print(f"\n## lesion contrast ({time.time() - t0:.0f} s)\n")
    print(_md(summ.drop(columns=["alpha", "correction", "inference"])))
    print()
    wide = profiles.pivot(index="layer", columns="contrast", values="mean_abs_effect")
    sig = profiles.pivot(index="layer", columns="contrast", values="fraction_significant")
    sig.columns = [f"{c} (share sig.)" for c in sig.columns]
    print(_md(pd.concat([wide, sig], axis=1).reset_index()))
    return res


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "lesion"))
    parser.add_argument("--parts", nargs="+",
                        default=["localizer", "capped", "dissociation", "contrast"],
                        choices=["localizer", "capped", "dissociation", "contrast"])
    parser.add_argument("--n-random", type=int, default=10)
    parser.add_argument("--n-magnitude", type=int, default=5)
    parser.add_argument("--magnitude-bins", type=int, default=50)
    parser.add_argument("--n-dissociation-controls", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is fastest on a shared 2-core machine)")
    args = parser.parse_args(argv)
    import torch

    import llmfmri as lf

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = lf.load_model(device="cpu")
    info = {"model": model.llmfmri_info, "torch": torch.__version__, "args": vars(args)}
    (out / "provenance.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    for part in args.parts:
        {"localizer": part_localizer, "capped": part_capped,
         "dissociation": part_dissociation, "contrast": part_contrast}[part](model, out, args)


if __name__ == "__main__":
    main()
