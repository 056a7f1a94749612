"""``llmfmri importance --out DIR``: parameter importance over text sets, and its regions."""

from ._common import MATRIX_KINDS, add_model_arguments

NAME = "importance"
HELP = "parameter importance |theta * dL/dtheta| over text sets, and the regions it defines"
DESCRIPTION = (
    "Parameter importance (Zhang et al. 2024): the gradient of the mean token NLL of each text "
    "set, accumulated by backward passes (the weights are never updated), times the weights, "
    "for every entry of every weight matrix of the transformer blocks. Writes the regions it "
    "defines per matrix -- the top fraction summed over sets (core), the bottom fraction, "
    "random fractions and each set's specific region (its top fraction minus the others') -- "
    "as <name>.safetensors masks with <name>.json, importance.tsv (mean importance per matrix "
    "and set), regions.tsv and summary.json; with --save-scores also the scores themselves."
)
EPILOG = """\
examples:
  llmfmri importance --out runs/importance --max-tokens 20000
  llmfmri importance --out runs/imp --texts domains --languages de fr ru zh_CN --fraction 0.01

Text sets: a paradigm (one set per condition; default the domains paradigm's passages), a .txt
file (one text per line), a .tsv (prompt column); --languages adds parallel sets (English and
each language) from the translated message catalogues installed under /usr/share/locale.
Lesion a saved region with: llmfmri lesion --weights DIR/region-core.json --out ...
"""


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--texts", nargs="+", default=None, metavar="SOURCE",
                        help="text sets: paradigms, .txt or .tsv files (default: domains)")
    parser.add_argument("--languages", nargs="+", default=None, metavar="LOCALE",
                        help="add parallel sets from installed message catalogues, e.g. de fr "
                             "ru zh_CN (with their English originals as set 'en')")
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="share of each matrix in a region (default 0.01 = 1%%)")
    parser.add_argument("--regions", nargs="+", default=None,
                        choices=["core", "bottom", "random", "specific"],
                        help="regions to write (default: core, bottom, random, and specific "
                             "when there are two or more text sets)")
    parser.add_argument("--kinds", nargs="+", default=None, choices=list(MATRIX_KINDS),
                        help="matrix kinds (default all)")
    parser.add_argument("--n-random", type=int, default=1,
                        help="random regions matched to the core per matrix (default 1)")
    parser.add_argument("--layers", nargs="+", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=256,
                        help="tokens per window (default 256)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per pass (default 8)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="at most this many tokens per text set")
    parser.add_argument("--seed", type=int, default=0, help="seeds the random regions")
    parser.add_argument("--save-scores", action="store_true",
                        help="also write the float32 scores (importance.safetensors: 4 bytes "
                             "per weight and set)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def gather_texts(sources, languages=None, default="domains"):
    """Text sets from ``--texts`` sources and ``--languages`` (refusing duplicate set names)."""
    from ..lesions import catalog_texts, load_texts

    sets = {}
    groups = [load_texts(s) for s in (sources or ([default] if default else []))]
    if languages:
        groups.append(catalog_texts(languages))
    for group in groups:
        for name, texts in group.items():
            if name in sets:
                raise ValueError(f"Two text sources give a text set named {name!r}; rename one "
                                 "of them.")
            sets[name] = texts
    if not sets:
        raise ValueError("No text set: give --texts or --languages.")
    return sets


def run(args):
    import pandas as pd

    from ..io import OutputSet, bids_label, check_unique_labels, table_path
    from ..lesions import parameter_importance, random_regions
    from ..models import load_model

    if not 0 < args.fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], but got {args.fraction}.")
    sets = gather_texts(args.texts, args.languages)
    labels = check_unique_labels(list(sets), label=bids_label, what="text set")
    if args.regions is None:
        args.regions = ["core", "bottom", "random"] + (["specific"] if len(sets) >= 2 else [])
    if "specific" in args.regions and len(sets) < 2:
        raise ValueError(f"--regions specific needs at least two text sets (a set's top "
                         f"fraction minus the others'), but there is one ({list(sets)}); add "
                         "--texts or --languages, or leave 'specific' out of --regions.")
    names = []
    if "core" in args.regions:
        names.append("region-core")
    if "bottom" in args.regions:
        names.append("region-bottom")
    if "random" in args.regions:
        names += [f"region-random-{k}" for k in range(args.n_random)]
    if "specific" in args.regions:
        names += [f"region-{labels[s]}-specific" for s in sets]
    early = OutputSet(args.out, overwrite=args.overwrite)
    for name in names:
        early.add_json(f"{name}.json", {})
    early.add_json("summary.json", {})
    early.check()
    model = load_model(args.model, revision=args.revision, device=args.device)
    imp = parameter_importance(model, sets, kinds=args.kinds, layers=args.layers,
                               max_length=args.max_length, batch_size=args.batch_size,
                               max_tokens=args.max_tokens, progress=args.verbose >= 1,
                               verbose=args.verbose)
    regions = {}
    core = imp.region("top", args.fraction, label="core")
    if "core" in args.regions:
        regions["region-core"] = core
    if "bottom" in args.regions:
        regions["region-bottom"] = imp.region("bottom", args.fraction, label="bottom")
    if "random" in args.regions:
        for k, r in enumerate(random_regions(core, args.n_random, random_state=args.seed)):
            regions[f"region-random-{k}"] = r
    if "specific" in args.regions:
        for s in sets:
            regions[f"region-{labels[s]}-specific"] = imp.specific_region(
                s, args.fraction, label=f"{s}-specific")
    out = OutputSet(args.out, overwrite=args.overwrite)
    for name, region in regions.items():
        region.add_to(out, name)
    rows = [{"file": f"{name}.json", "label": r.label, "rule": r.rule, "n_params": r.n_params,
             "n_total": r.n_total, "fraction": r.fraction,
             "overlap_with_core": (r & core).n_params} for name, r in regions.items()]
    table = pd.DataFrame(rows)
    out.add_tsv(table_path(args.out, "regions").name, table)
    out.add_tsv(table_path(args.out, "importance").name, imp.table())
    if args.save_scores:
        imp.add_to(out, "importance")
    out.add_json("summary.json", {"settings": {**imp.info, "fraction": args.fraction,
                                               "text_sets": {k: len(v) for k, v in sets.items()},
                                               "languages": args.languages},
                                  "n_tokens": imp.n_tokens, "regions": rows})
    out.write()
    print(f"Importance over {len(sets)} text sets ({sum(imp.n_tokens.values())} tokens), "
          f"{imp.n_params} weights in {len(imp.names)} matrices.")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"Wrote the regions, importance.tsv, regions.tsv and summary.json to {args.out}")
    return 0
