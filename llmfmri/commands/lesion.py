"""``llmfmri lesion --out DIR``: the localizer lesion study (localize, lesion, behaviour).

With ``--weights REGION``, ``--dimension LAYER DIM`` or ``--truncation MATRIX LAYER
RHO`` it lesions weights instead (:mod:`llmfmri.commands._lesion_weights`), with the
same controls, behaviour and tables.
"""

from ._common import add_model_arguments, print_lesion_summary
from ._lesion_weights import (WEIGHT_EPILOG, add_weight_arguments, record_command, run_weights,
                              wants_weights)

NAME = "lesion"
HELP = "localize units, lesion them and measure behaviour against matched controls"
DESCRIPTION = (
    "The localizer lesion study (AlKhamissi et al. 2025): record a localizer paradigm (default "
    "the language localizer, sentences vs non-word lists), score each unit's selectivity, take "
    "the top fraction of units, lesion them (zero by default) and measure perplexity on text "
    "sets and accuracy on gold-answer paradigms: intact, lesioned, under random networks with "
    "the same number of units in every layer and site, and under the least selective units. "
    "Writes lesion-summary.tsv (the lesion against each control distribution: effect, spread, "
    "empirical p), lesion-behaviour.tsv, lesion-items.tsv, lesion-controls.tsv, "
    "lesion-layers.tsv, the network's mask and units, and summary.json. With --weights, "
    "--dimension or --truncation it lesions weights instead (a saved region from llmfmri "
    "importance, one hidden dimension, a low-rank truncation) against random regions, "
    "dimensions or singular components, and writes weight-lesion-*.tsv."
)
EPILOG = (
    "example: llmfmri lesion --out runs/lesion --fraction 0.01 --n-random 10 "
    "--texts paradigms/stimuli/sentences.txt\n\n" + WEIGHT_EPILOG
)


def add_arguments(parser):
    parser.add_argument("--out", required=True, help="output folder for the tables")
    add_model_arguments(parser)
    parser.add_argument("--localizer", default="language_localizer",
                        help="localizer paradigm: a library name or a YAML file "
                             "(default language_localizer)")
    parser.add_argument("--contrast", default="sentences - nonwords",
                        help="the localizer contrast 'a - b' (default 'sentences - nonwords')")
    parser.add_argument("--statistic", choices=["welch_abs", "prompt"], default="welch_abs",
                        help="welch_abs: Welch t on |activation| at the last prompt token (the "
                             "seed); prompt: llmfmri's prompt-level t")
    parser.add_argument("--fraction", type=float, default=0.01,
                        help="share of units lesioned (default 0.01 = 1%%)")
    parser.add_argument("--per-layer", action="store_true",
                        help="take the top fraction within each layer")
    parser.add_argument("--sites", nargs="+", default=["resid_post"],
                        help="sites the localizer records (default resid_post)")
    parser.add_argument("--strategy", choices=["zero", "mean", "noise", "scale", "resample"],
                        default="zero",
                        help="what the lesioned units become (default zero); mean, noise and "
                             "resample take the localizer recording as their reference; weight "
                             "lesions take zero, scale or noise")
    parser.add_argument("--factor", type=float, default=None, help="for --strategy scale")
    parser.add_argument("--n-random", type=int, default=5,
                        help="random networks with the same per-layer counts (default 5)")
    parser.add_argument("--n-magnitude", type=int, default=0,
                        help="random networks also matched on activation magnitude (default 0)")
    parser.add_argument("--magnitude-bins", type=int, default=10,
                        help="magnitude quantile bins per layer for --n-magnitude (default 10)")
    parser.add_argument("--no-bottom", action="store_true",
                        help="skip the least-selective control")
    parser.add_argument("--texts", nargs="+", default=None, metavar="SOURCE",
                        help="text sets for perplexity: .txt files (one text per line), .tsv "
                             "files (prompt column) or paradigms (one set per condition); "
                             "default: plain English, code, non-word lists, random strings")
    parser.add_argument("--tasks", nargs="*", default=None, metavar="PARADIGM",
                        help="gold-answer paradigms for accuracy (default multiple_demand "
                             "theory_of_mind template; give none to skip)")
    parser.add_argument("--localizer-recording", default=None, metavar="DIR",
                        help="an existing localizer recording of the model, or where to record "
                             "it (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the control draws")
    parser.add_argument("--batch-size", type=int, default=8,
                        help="texts scored per forward pass (default 8)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="sliding-window length for perplexity (default: the model's context)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_weight_arguments(parser)


def _texts(sources):
    from ..lesions import load_texts

    if not sources:
        return None
    sets = {}
    for source in sources:
        for name, texts in load_texts(source).items():
            if name in sets:
                raise ValueError(f"Two text sources give a text set named {name!r}; rename one "
                                 "of the files.")
            sets[name] = texts
    return sets


def run(args):
    if wants_weights(args):
        return run_weights(args)
    from ..io import OutputSet
    from ..lesions import DEFAULT_TASKS, localizer_study
    from ..models import load_model
    from ..paradigm import load_paradigm

    # cheap input checks before loading a model
    localizer = load_paradigm(args.localizer)
    tasks = [load_paradigm(t) for t in (DEFAULT_TASKS if args.tasks is None else args.tasks)]
    texts = _texts(args.texts)
    early = OutputSet(args.out, overwrite=args.overwrite)
    early.add_json("summary.json", {})
    early.check()
    model = load_model(args.model, revision=args.revision, device=args.device)
    study = localizer_study(
        model, localizer=localizer, contrast=args.contrast, statistic=args.statistic,
        fraction=args.fraction, per_layer=args.per_layer, sites=args.sites,
        strategy=args.strategy, factor=args.factor, n_random=args.n_random,
        n_magnitude=args.n_magnitude, magnitude_bins=args.magnitude_bins,
        bottom=not args.no_bottom, texts=texts, tasks=tasks,
        localizer_recording=args.localizer_recording, out=args.out, overwrite=args.overwrite,
        random_state=args.seed, batch_size=args.batch_size, max_length=args.max_length,
        verbose=args.verbose)
    from pathlib import Path

    record_command(Path(args.out) / "summary.json", args)
    print(study.network.describe())
    print_lesion_summary(study)
    print(f"Wrote the tables and summary.json to {args.out}")
    return 0
