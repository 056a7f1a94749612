"""The weight-lesion studies of issue 14 on the default model (CPU-sized), one by one.

Each study writes its tables under ``--out/<study>/`` and prints them as Markdown
(for ``docs/results/weight_lesions.md``). Settings are fixed here, before any
result is seen; change them on the command line, not to chase a result.

Text sets (offline):

* English domains: the domains paradigm's passages; run 1 (5 per domain) for importance
  and scans, run 2 (the other 5) held out for perplexity.
* Languages: the parallel message catalogues installed under /usr/share/locale
  (``catalog_texts``: GNU coreutils, tar, wget, libc, dpkg and GLib messages, in English
  and their translations); even items for importance, odd items held out.

Usage::

    python scripts/weight_lesion_study.py --study core         # importance + core region
    python scripts/weight_lesion_study.py --study dimensions
    python scripts/weight_lesion_study.py --study truncation
    python scripts/weight_lesion_study.py --study freezing
    python scripts/weight_lesion_study.py --study all --out runs/weight_lesions
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

LANGUAGES = ("de", "fr", "es", "ru", "zh_CN")


def md(table, floatfmt=".4g"):
    """A DataFrame as a Markdown table."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in table.itertuples(index=False):
        cells = [format(v, floatfmt) if isinstance(v, (float, np.floating)) else str(v)
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_sets(n_fit=40, n_held=20):
    """Importance and held-out text sets (domains by run; catalogues even/odd items)."""
    import llmfmri.lesions as ls
    from llmfmri.paradigm import load_paradigm

    sched = load_paradigm("domains").schedule()
    fit, held = {}, {}
    for (run, cond), g in sched.groupby(["run", "trial_type"], sort=True):
        (fit if run == 1 else held)[cond] = g["prompt"].tolist()
    cat = ls.catalog_texts(list(LANGUAGES), join=4)
    for lang, texts in cat.items():
        fit[lang] = texts[0::2][:n_fit]
        held[lang] = texts[1::2][:n_held]
    return fit, held


def save(out, name, table):
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{name}.tsv", sep="\t", index=False)


def study_core(model, out, args):
    import llmfmri.lesions as ls

    fit, held = text_sets()
    t0 = time.time()
    imp = ls.parameter_importance(model, fit, max_length=256, batch_size=8,
                                  max_tokens=args.importance_tokens, progress=True)
    t_imp = time.time() - t0
    print(f"importance: {imp.n_tokens} tokens in {t_imp:.0f} s", flush=True)
    core = imp.region("top", 0.01, label="core1%")
    core.save(out / "region-core", overwrite=True)
    bottom = imp.region("bottom", 0.01, label="bottom1%")
    profile = core.profile("layer").assign(kind="core")
    save(out, "core-layer-profile", profile)
    save(out, "core-kind-profile", core.profile("kind"))
    study = ls.weight_lesion_study(model, core, controls={"bottom": [bottom]},
                                   n_random=args.n_random, texts=held, random_state=0,
                                   batch_size=8)
    save(out, "core-summary", study.summary)
    save(out, "core-behaviour", study.behaviour)
    save(out, "core-controls", study.controls_table())
    ppl = study.perplexity().reset_index()
    rand = [c for c in ppl.columns if str(c).startswith("random-")]
    ppl["random_mean"] = ppl[rand].mean(axis=1)
    ppl["random_sd"] = ppl[rand].std(axis=1, ddof=1)
    ppl["random_min"] = ppl[rand].min(axis=1)
    ppl["random_max"] = ppl[rand].max(axis=1)
    keep = ["set", "intact", "lesion", "bottom-0", "random_mean", "random_sd", "random_min",
            "random_max"]
    save(out, "core-perplexity", ppl)
    print("\n### Core region: perplexity on held-out text\n")
    print(md(ppl[keep]))
    beh = study.behaviour[(study.behaviour["condition"].isin(["intact", "lesion"]))]
    print("\n(intervals, intact and lesion)\n")
    print(md(beh[["condition", "set", "value", "ci_low", "ci_high", "n_items", "n_tokens"]]))
    summ = study.summary[["set", "control", "intact", "lesion", "control_mean", "control_sd",
                          "z", "p_empirical"]]
    print("\n" + md(summ))
    # specific regions: a language's and a domain's own top 1 % minus the others'
    spec_rows = []
    for name in args.specific:
        reg = imp.specific_region(name, 0.01)
        s = ls.weight_lesion_study(model, reg, n_random=2, texts=held, random_state=1)
        p = s.perplexity().reset_index()
        p["region"] = reg.label
        p["n_params"] = reg.n_params
        spec_rows.append(p)
    if spec_rows:
        spec = pd.concat(spec_rows, ignore_index=True)
        save(out, "specific-perplexity", spec)
        spec["lesion/intact"] = spec["lesion"] / spec["intact"]
        spec["random/intact"] = spec[["random-0", "random-1"]].mean(axis=1) / spec["intact"]
        print("\n### Specific regions\n")
        print(md(spec[["region", "n_params", "set", "intact", "lesion", "random-0", "random-1",
                       "lesion/intact", "random/intact"]]))
    (out / "core.json").write_text(json.dumps({
        "importance_tokens": imp.n_tokens, "importance_seconds": t_imp,
        "core_n_params": core.n_params, "core_n_total": core.n_total}, indent=2))
    return imp, core


def study_magnitude(model, out, args, core=None):
    """A magnitude control for the core region: the top 1 % of each matrix by |w|."""
    import llmfmri.lesions as ls
    from llmfmri.lesions._weights import model_matrices

    _, held = text_sets()
    mags = {n: m.read().abs().numpy().astype(np.float32)
            for n, m in model_matrices(model).items()}
    top_w = ls.ParameterImportance({"|w|": mags}, {"|w|": 0}).region("top", 0.01,
                                                                     label="top1%|w|")
    rows = [{"region": top_w.label, "n_params": top_w.n_params}]
    if core is not None:
        ov = core.overlap(top_w)
        rows[0].update(overlap_with_core=ov["n_both"], jaccard=ov["jaccard"])
    print("\n### Magnitude control\n")
    print(md(pd.DataFrame(rows)))
    study = ls.weight_lesion_study(model, top_w, n_random=1, texts=held, random_state=2)
    ppl = study.perplexity().reset_index()
    save(out, "magnitude-perplexity", ppl)
    print("\n" + md(ppl))


def study_dimensions(model, out, args, core=None):
    import torch

    import llmfmri.lesions as ls

    fit, held = text_sets(n_held=10)
    layer = args.layer
    scan_texts = {"en": fit["science"][:1] + fit["fiction"][:1]}
    t0 = time.time()
    scan = ls.dimension_scan(model, scan_texts, layer=layer, factor=4.0, progress=True)
    print(f"scan of layer {layer}: {time.time() - t0:.0f} s", flush=True)
    summ = scan.summary()
    save(out, f"dimension-scan-layer{layer}", summ)
    # massive activations: mean |h| of each residual dimension after the layer
    ids = model.tokenizer(" ".join(scan_texts["en"]), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states[layer + 1][0].abs().mean(0)
    mag = hs.numpy()
    summ["mean_abs_activation"] = mag[summ["dim"].to_numpy()]
    summ["activation_rank"] = pd.Series(-mag).rank(method="first").astype(int).to_numpy()[
        summ["dim"].to_numpy()]
    print(f"\n### Dimension scan, layer {layer} (x4, read and write), top 10 of "
          f"{len(summ)} (scan text: {scan.intact['n_tokens'].iloc[-1]} tokens, intact "
          f"perplexity {scan.intact['perplexity'].iloc[-1]:.4g})\n")
    print(md(summ.head(10)[["dim", "perplexity", "ratio", "delta_nll", "rank",
                            "mean_abs_activation", "activation_rank"]]))
    print(f"\nmedian ratio over all dimensions: {summ['ratio'].median():.4g}; "
          f"90th percentile {summ['ratio'].quantile(0.9):.4g}")
    if core is not None:
        prof = ls.dimension_profile(core, layers=[layer])
        save(out, f"dimension-core-profile-layer{layer}", prof)
        top_core = prof["dim"].head(10).tolist()
        print(f"core region's most populated dimensions in layer {layer}: {top_core}; "
              f"their scan ranks: {summ.set_index('dim').loc[top_core, 'rank'].tolist()}")
    crit = scan.critical(args.n_critical)
    held_texts = {"en": held["science"] + held["fiction"] + held["legal"],
                  "de": held["de"], "zh_CN": held["zh_CN"]}
    cmp = ls.compare_dimensions(model, held_texts, layer=layer, dims=crit, n_controls=20,
                                random_state=0, progress=True)
    save(out, f"dimension-compare-layer{layer}", cmp)
    save(out, f"dimension-controls-layer{layer}", cmp.attrs["controls"])
    per_set = cmp.attrs["scan"].table
    save(out, f"dimension-heldout-table-layer{layer}", per_set)
    print("\n### Critical dimensions on held-out text against 20 random dimensions\n")
    print(md(cmp[["dim", "perplexity_intact", "perplexity", "ratio", "effect", "control_mean",
                  "control_sd", "control_max", "z", "p_empirical"]]))
    ctrl = cmp.attrs["controls"]
    print(f"\ncontrol dimensions {sorted(ctrl['dim'].tolist())}: perplexity ratio "
          f"{ctrl['ratio'].min():.4g}-{ctrl['ratio'].max():.4g}")
    wide = per_set[per_set["dim"].isin(crit)].pivot(index="dim", columns="text_set",
                                                    values="ratio").reset_index()
    print("\n" + md(wide))


def study_truncation(model, out, args):
    import llmfmri.lesions as ls

    _, held = text_sets(n_held=10)
    items = ls.recall_items(200, seed=0, tokenizer=model.tokenizer)
    t0 = time.time()
    res = ls.truncation_search(model, items, matrices=("mlp_gate", "mlp_in", "mlp_out"),
                               layers=args.trunc_layers, rhos=(0.5, 0.2, 0.1, 0.05, 0.01),
                               validation=0.2, metric="accuracy",
                               texts={k: held[k] for k in ("science", "fiction", "legal",
                                                           "code", "en")},
                               n_controls=5, random_state=0, progress=True)
    print(f"truncation search: {time.time() - t0:.0f} s, {res.settings['n_svd']} SVDs for "
          f"{len(res.grid)} cells", flush=True)
    save(out, "truncation-grid", res.grid)
    save(out, "truncation-test", res.test)
    save(out, "truncation-items", res.items)
    save(out, "truncation-perplexity", res.perplexity)
    save(out, "truncation-controls", res.controls)
    print("\nintact on validation:", {k: round(v, 4) for k, v in res.intact_validation.items()})
    print("best:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in
                    res.best.items()})
    top = res.grid.sort_values(["accuracy", "rho"], ascending=False).head(10)
    print("\n### Grid, best 10 cells on validation\n")
    print(md(top[["matrix", "layer", "rho", "rank", "accuracy", "p_correct", "p_generic",
                  "logit_diff"]]))
    by = res.grid.groupby("matrix")[["accuracy"]].agg(["min", "max"]).reset_index()
    by.columns = ["matrix", "accuracy_min", "accuracy_max"]
    print("\n" + md(by))
    print("\n### Test split\n")
    print(md(res.test[["model", "n_items", "accuracy", "ci_low", "ci_high", "beats_generic",
                       "beats_subject", "p_correct", "p_generic", "logit_diff"]]))
    print("\npaired difference (truncated - intact):", res.test.attrs["difference"])
    print("random-component controls:", res.controls.attrs["comparison"])
    print("\n" + md(res.controls))
    print("\n### Perplexity, held-out\n")
    print(md(res.perplexity[["model", "text_set", "perplexity", "ci_low", "ci_high",
                             "n_tokens"]]))
    (out / "truncation.json").write_text(json.dumps(
        {"settings": res.settings, "best": res.best, "intact_validation":
         res.intact_validation, "difference": res.test.attrs["difference"],
         "controls": res.controls.attrs["comparison"]}, indent=2, default=str))


def study_freezing(model, out, args, core=None):
    import llmfmri.lesions as ls

    fit, held = text_sets()
    if core is None:
        imp = ls.parameter_importance(model, fit, max_length=256, batch_size=8,
                                      max_tokens=args.importance_tokens, progress=True)
        core = imp.region("top", 0.01, label="core1%")
        del imp
    train = fit[args.train_language]
    evals = {"en_domains": held["science"] + held["fiction"] + held["legal"],
             "en_catalog": held["en"], args.train_language: held[args.train_language]}
    t0 = time.time()
    study = ls.forgetting_study(model, {args.train_language: train}, evals, core, n_random=1,
                                random_state=0, steps=args.steps, lr=args.lr, batch_size=4,
                                max_length=128, eval_every=args.eval_every, progress=True)
    print(f"freezing study: {time.time() - t0:.0f} s", flush=True)
    save(out, "forgetting-curves", study.curves)
    wide = study.curves.pivot_table(index=["text_set", "step"], columns="condition",
                                    values="perplexity").reset_index()
    print(f"\n### Forgetting curves (train on {args.train_language}, {args.steps} steps of 4 x "
          f"128 tokens, AdamW lr {args.lr})\n")
    print(md(wide))
    print("\nfrozen entries intact after every step:",
          {k: r.frozen_intact for k, r in study.runs.items()})
    losses = pd.concat([r.losses.assign(condition=k) for k, r in study.runs.items()])
    save(out, "forgetting-losses", losses)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", nargs="+", default=["all"],
                        choices=["all", "core", "dimensions", "truncation", "freezing",
                                 "magnitude"])
    parser.add_argument("--out", default="runs/weight_lesions")
    parser.add_argument("--importance-tokens", type=int, default=3000,
                        help="tokens per text set for importance (default 3000)")
    parser.add_argument("--n-random", type=int, default=5)
    parser.add_argument("--specific", nargs="*", default=["zh_CN", "code"])
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--n-critical", type=int, default=5)
    parser.add_argument("--trunc-layers", nargs="+", type=int,
                        default=[0, 5, 10, 15, 20, 25, 27, 29])
    parser.add_argument("--train-language", default="de")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's; 1 when sharing the machine)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from llmfmri import load_model

    torch.manual_seed(0)
    studies = ["core", "dimensions", "truncation", "freezing"] if "all" in args.study \
        else args.study
    model = load_model()
    out = Path(args.out)
    print(f"# weight-lesion studies: {studies}, model {model.llmfmri_info.get('model_id')}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    core = None
    saved = out / "core" / "region-core.json"
    if "core" not in studies and saved.is_file():
        import llmfmri.lesions as ls

        core = ls.load_region(saved)
        print(f"core region from {saved}: {core}", flush=True)
    for s in studies:
        t0 = time.time()
        if s == "core":
            _, core = study_core(model, out / "core", args)
        elif s == "dimensions":
            study_dimensions(model, out / "dimensions", args, core=core)
        elif s == "truncation":
            study_truncation(model, out / "truncation", args)
        elif s == "magnitude":
            study_magnitude(model, out / "magnitude", args, core=core)
        else:
            study_freezing(model, out / "freezing", args, core=core)
        print(f"\n({s}: {time.time() - t0:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
