"""``llmfmri mfa CHECKPOINTS... --out DIR``: NeuroMFA over checkpoints."""

NAME = "mfa"
HELP = "NeuroMFA: multifractal spectra and degree of emergence over checkpoints"
DESCRIPTION = ("Multifractal analysis of neuron interaction networks (NeuroMFA) over a series of "
               "checkpoints: alpha0, spectrum width and degree of emergence E(t).")
EPILOG = """\
examples:
  llmfmri mfa ~/llmfmri_data/trajectories/tiny-llama-wordnet-seed0 --out runs/mfa
  llmfmri mfa ckpt/step0 ckpt/step100 ckpt/step1000 --out runs/mfa
  llmfmri mfa EleutherAI/pythia-70m-deduped --revision step0 step1000 step143000 --out runs/pythia

A trajectory folder (step*/ checkpoint subfolders and trajectory.tsv, as written by
scripts/train_tiny_llama.py) is expanded in step order and its losses are merged.
Writes neuromfa.tsv (alpha0, width, E per checkpoint), neuromfa_samples.tsv,
spectra.npz, neuromfa.json, spectra.png and emergence.png.
"""


def add_arguments(parser):
    parser.add_argument("checkpoints", nargs="+",
                        help="checkpoint folders, a trajectory folder, or one model id with "
                             "--revision")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--revision", "--revisions", dest="revisions", nargs="+", default=None,
                        help="Hub revisions of the one model given (e.g. step0 step1000)")
    parser.add_argument("--steps", nargs="+", type=int, default=None,
                        help="training step of each checkpoint (default: parsed from names)")
    parser.add_argument("--trajectory", default=None,
                        help="trajectory.tsv (or its folder) whose columns (e.g. val_loss) are "
                             "merged")
    parser.add_argument("--n-neurons", type=int, default=32, help="neurons per layer (default 32)")
    parser.add_argument("--n-mlp-neurons", type=int, default=None,
                        help="neurons per MLP layer (default 2 x n-neurons)")
    parser.add_argument("--n-samples", type=int, default=10, help="sampled networks (default 10)")
    parser.add_argument("--min-distance", type=float, default=1.0, help="default 1")
    parser.add_argument("--max-distance", type=float, default=150.0, help="default 150")
    parser.add_argument("--decimals", type=int, default=0, help="rounding of distances (default 0)")
    parser.add_argument("--min-edges", type=int, default=11,
                        help="keep nodes with at least this many edges in range (default 11: "
                             "'> 10')")
    parser.add_argument("--derivative", choices=("central", "forward"), default="central")
    parser.add_argument("--neighbourhood", choices=("edge", "path"), default="edge")
    parser.add_argument("--empty-layers", choices=("raise", "warn", "ignore"), default="raise")
    parser.add_argument("--filter", dest="spectrum_filter", default=None,
                        choices=("f_nonpositive", "alpha_start", "both"))
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing outputs in --out")


def run(args):
    from pathlib import Path

    from ..multifractal import NeuroMFA

    out = Path(args.out)
    figures = [] if args.no_plots else ["spectra.png", "emergence.png"]
    existing = [n for n in ("neuromfa.tsv", *figures) if (out / n).exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{out} already holds {existing}; pass --overwrite to replace them.")
    checkpoints = args.checkpoints[0] if len(args.checkpoints) == 1 else args.checkpoints
    mfa = NeuroMFA(
        n_neurons=args.n_neurons, n_mlp_neurons=args.n_mlp_neurons, n_samples=args.n_samples,
        min_distance=args.min_distance, max_distance=args.max_distance, decimals=args.decimals,
        min_edges=args.min_edges, derivative=args.derivative, neighbourhood=args.neighbourhood,
        empty_layers=args.empty_layers, spectrum_filter=args.spectrum_filter, dtype=args.dtype,
        device=args.device, verbose=args.verbose)
    mfa.fit(checkpoints, revisions=args.revisions, steps=args.steps, trajectory=args.trajectory)
    mfa.save(out, overwrite=args.overwrite)
    if figures:
        _save_figures(mfa, out)
    cols = [c for c in ("step", "alpha0", "width", "emergence", "train_loss", "val_loss")
            if c in mfa.results_]
    print(mfa.results_[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out}")
    return 0


def _save_figures(mfa, out):
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._utils import atomic_write_bytes

    for name, make in (("spectra.png", lambda: mfa.plot_spectra(
            title="NeuroMFA spectra (mean over samples)").figure),
            ("emergence.png", mfa.plot_emergence)):
        fig = make()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        atomic_write_bytes(out / name, buf.getvalue(), overwrite=True)  # checked above
