"""``llmfmri truncate --out DIR``: LASER's low-rank truncation search, as a lesion."""

from ._common import MATRIX_KINDS, add_model_arguments


NAME = "truncate"
HELP = "low-rank truncation (matrix, layer, rho): search on validation items, report on test"
DESCRIPTION = (
    "Layer-selective rank reduction (LASER, Sharma et al. 2024): replace one weight matrix of "
    "one layer by its rank-floor(rho * min(m, n)) SVD approximation, search (matrix, layer, "
    "rho) on the first --validation fraction of the in-context recall items (IOI-style names: "
    "the probability of the correct name against the repeated name and generic tokens), and "
    "report the chosen truncation on the remaining test items and on held-out text "
    "(perplexity), against the intact model and against random-component truncations of the "
    "same rank. One SVD per matrix serves the whole grid. Writes truncation-grid.tsv, "
    "truncation-test.tsv, truncation-items.tsv, truncation-perplexity.tsv, "
    "truncation-controls.tsv and summary.json."
)
EPILOG = """\
examples:
  llmfmri truncate --out runs/laser --layers 24 25 26 27 28 29 --rhos 0.1 0.05 0.01
  llmfmri truncate --out runs/laser --matrices mlp_in --layers 27 --rhos 0.01 --n-controls 10
"""


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument("--matrices", nargs="+", default=["mlp_in", "mlp_out"],
                        choices=list(MATRIX_KINDS),
                        help="matrix kinds tau (default mlp_in mlp_out)")
    parser.add_argument("--layers", nargs="+", type=int, default=None,
                        help="layers l (default every layer)")
    parser.add_argument("--rhos", nargs="+", type=float, default=None,
                        help="fractions of the maximum rank kept (default LASER's grid 0.9 .. "
                             "0.005)")
    parser.add_argument("--n-items", type=int, default=200,
                        help="in-context recall items (default 200)")
    parser.add_argument("--item-seed", type=int, default=0, help="seed of the items (default 0)")
    parser.add_argument("--multi-token-names", action="store_true",
                        help="keep names the tokenizer splits into several tokens (scored by "
                             "teacher forcing); default: single-token names only")
    parser.add_argument("--validation", type=float, default=0.2,
                        help="first fraction of the items used for selection (default 0.2)")
    parser.add_argument("--metric", default="accuracy",
                        choices=["accuracy", "p_correct", "logit_diff", "beats_generic",
                                 "neg_p_generic"],
                        help="validation measure maximised (default accuracy)")
    parser.add_argument("--texts", nargs="*", default=None, metavar="SOURCE",
                        help="held-out text sets for perplexity (default: the domains "
                             "paradigm; give none to skip)")
    parser.add_argument("--n-controls", type=int, default=5,
                        help="random-component truncations of the chosen matrix (default 5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the random-component controls (default 0)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="items scored per forward pass (default 16)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args):
    import json

    import pandas as pd

    from .._utils import check_fraction, check_positive_int
    from ..io import OutputSet, table_path
    from ..lesions import LASER_RHOS, recall_items, truncation_search
    from ..models import load_model
    from .importance import gather_texts

    # cheap input checks before loading a model
    for rho in args.rhos or ():
        check_fraction("--rhos", rho, inclusive=(True, True))
    check_fraction("--validation", args.validation, inclusive=(False, False))
    check_positive_int("--n-items", args.n_items, minimum=2)
    check_positive_int("--n-controls", args.n_controls, minimum=0)
    check_positive_int("--batch-size", args.batch_size)
    for layer in args.layers or ():
        check_positive_int("--layers", layer, minimum=0)
    texts = None
    if args.texts is None or args.texts:
        texts = gather_texts(args.texts, None)
    names = ["truncation-grid", "truncation-test", "truncation-items", "truncation-controls",
             "truncation-perplexity"]
    early = OutputSet(args.out, overwrite=args.overwrite)
    for name in names:
        early.add_tsv(table_path(args.out, name).name, pd.DataFrame())
    early.add_json("summary.json", {})
    early.check()
    model = load_model(args.model, revision=args.revision, device=args.device)
    items = recall_items(args.n_items, seed=args.item_seed, tokenizer=model.tokenizer,
                         single_token=not args.multi_token_names)
    res = truncation_search(model, items, matrices=args.matrices, layers=args.layers,
                            rhos=LASER_RHOS if args.rhos is None else args.rhos,
                            validation=args.validation, metric=args.metric, texts=texts,
                            n_controls=args.n_controls, batch_size=args.batch_size,
                            random_state=args.seed, progress=args.verbose >= 1,
                            verbose=args.verbose)
    out = OutputSet(args.out, overwrite=args.overwrite)
    tables = {"truncation-grid": res.grid, "truncation-test": res.test,
              "truncation-items": res.items,
              "truncation-controls": res.controls if res.controls is not None else pd.DataFrame(),
              "truncation-perplexity": res.perplexity if res.perplexity is not None
              else pd.DataFrame()}
    for name, table in tables.items():
        out.add_tsv(table_path(args.out, name).name, table)
    info = getattr(model, "llmfmri_info", {})
    summary = {"model": info.get("model_id"), "model_weights": info.get("weights_sha256"),
               "command": getattr(args, "command_line", None),
               "settings": res.settings, "intact_validation": res.intact_validation,
               "best": res.best, "test_difference": res.test.attrs.get("difference"),
               "controls": (res.controls.attrs.get("comparison")
                            if res.controls is not None else None),
               "test": json.loads(res.test.to_json(orient="records"))}
    out.add_json("summary.json", summary)
    out.write()
    b = res.best
    print(f"Best on {res.settings['n_validation']} validation items: ({b['matrix']}, layer "
          f"{int(b['layer'])}, rho {b['rho']:g}, rank {int(b['rank'])}): {args.metric} "
          f"{b[args.metric]:.4g} vs intact {res.intact_validation[args.metric]:.4g}")
    print(res.test[["model", "n_items", "accuracy", "ci_low", "ci_high", "p_correct",
                    "p_generic"]].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    if res.perplexity is not None:
        print(res.perplexity[["model", "text_set", "perplexity", "ci_low", "ci_high"]]
              .to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"Wrote the tables and summary.json to {args.out}")
    return 0
