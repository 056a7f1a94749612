"""``llmfmri record PARADIGM --out DIR``: record a paradigm's per-token activations."""

from ._common import add_model_arguments

NAME = "record"
HELP = "record a paradigm's per-token activations to disk"
DESCRIPTION = ("Run a paradigm through a model and stream one frame per token step (the chosen "
               "sites of every layer) to a resumable BIDS-style recording folder.")


def add_arguments(parser):
    parser.add_argument("paradigm", help="paradigm YAML file")
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--sites", default="resid_post", nargs="+",
                        help="components (resid_post, attn_out, mlp_out, mlp_act), site names, "
                             "embed or all")
    parser.add_argument("--runs", type=int, nargs="+", default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32", help="storage dtype: float32 or float16")
    parser.add_argument("--model-dtype", default=None,
                        help="model parameter dtype (default float32)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different recording in --out")


def run(args):
    from ..models import load_model
    from ..paradigm import load_paradigm
    from ..recording import record

    paradigm = load_paradigm(args.paradigm)  # cheap input checks before loading a model
    model = load_model(args.model, revision=args.revision, dtype=args.model_dtype,
                       device=args.device)
    rec = record(model, paradigm, sites=args.sites, out=args.out, runs=args.runs,
                 batch_size=args.batch_size, dtype=args.dtype, seed=args.seed,
                 overwrite=args.overwrite, progress=args.verbose > 0)
    print(rec)
    for run_ in rec.runs:
        print(f"  run {run_}: {rec.n_frames(run_)} frames x {rec.units.n_units} units")
    return 0
