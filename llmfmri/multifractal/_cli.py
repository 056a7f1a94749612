"""``llmfmri mfa CHECKPOINTS... --out DIR``: NeuroMFA over checkpoints from the command line."""

from __future__ import annotations

import sys

__all__ = ["add_mfa_parser", "run_mfa_command"]

_EPILOG = """\
examples:
  llmfmri mfa ~/llmfmri_data/trajectories/tiny-llama-wordnet-seed0 --out runs/mfa
  llmfmri mfa ckpt/step0 ckpt/step100 ckpt/step1000 --out runs/mfa
  llmfmri mfa EleutherAI/pythia-70m-deduped --revision step0 step1000 step143000 --out runs/pythia

A trajectory folder (step*/ checkpoint subfolders and trajectory.tsv, as written by
scripts/train_tiny_llama.py) is expanded in step order and its losses are merged.
Writes neuromfa.tsv (alpha0, width, E per checkpoint), neuromfa_samples.tsv,
spectra.npz, neuromfa.json, spectra.png and emergence.png.
"""


def add_mfa_parser(subparsers):
    """Add the ``mfa`` sub-command to an ``argparse`` subparsers object; returns the parser."""
    import argparse

    p = subparsers.add_parser(
        "mfa", help="NeuroMFA: multifractal spectra and degree of emergence over checkpoints",
        description="Multifractal analysis of neuron interaction networks (NeuroMFA) over a "
                    "series of checkpoints: alpha0, spectrum width and degree of emergence E(t).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+",
                   help="checkpoint folders, a trajectory folder, or one model id with --revision")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--revision", "--revisions", dest="revisions", nargs="+", default=None,
                   help="Hub revisions of the one model given (e.g. step0 step1000)")
    p.add_argument("--steps", nargs="+", type=int, default=None,
                   help="training step of each checkpoint (default: parsed from names)")
    p.add_argument("--trajectory", default=None,
                   help="trajectory.tsv (or its folder) whose columns (e.g. val_loss) are merged")
    p.add_argument("--n-neurons", type=int, default=32, help="neurons per layer (default 32)")
    p.add_argument("--n-mlp-neurons", type=int, default=None,
                   help="neurons per MLP layer (default 2 x n-neurons)")
    p.add_argument("--n-samples", type=int, default=10, help="sampled networks (default 10)")
    p.add_argument("--min-distance", type=float, default=1.0, help="default 1")
    p.add_argument("--max-distance", type=float, default=150.0, help="default 150")
    p.add_argument("--decimals", type=int, default=0, help="rounding of distances (default 0)")
    p.add_argument("--min-edges", type=int, default=11,
                   help="keep nodes with at least this many edges in range (default 11: '> 10')")
    p.add_argument("--derivative", choices=("central", "forward"), default="central")
    p.add_argument("--neighbourhood", choices=("edge", "path"), default="edge")
    p.add_argument("--empty-layers", choices=("raise", "warn", "ignore"), default="raise")
    p.add_argument("--filter", dest="spectrum_filter", default=None,
                   choices=("f_nonpositive", "alpha_start", "both"))
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG figures")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs in --out")
    p.add_argument("-v", "--verbose", action="count", default=1,
                   help="more log output (progress per checkpoint is shown by default)")
    p.add_argument("-q", "--quiet", action="store_const", const=0, dest="verbose",
                   help="no progress output")
    p.set_defaults(func=run_mfa_command)
    return p


def run_mfa_command(args):
    """Run ``llmfmri mfa`` from parsed arguments; returns the exit status."""
    from pathlib import Path

    from ._series import NeuroMFA
    from ._spectrum import MultifractalError

    out = Path(args.out)
    existing = [n for n in ("neuromfa.tsv", "spectra.png", "emergence.png")
                if (out / n).exists()]
    if existing and not args.overwrite:
        print(f"llmfmri mfa: error: {out} already holds {existing}; pass --overwrite to "
              "replace them.", file=sys.stderr)
        return 2
    checkpoints = args.checkpoints[0] if len(args.checkpoints) == 1 else args.checkpoints
    mfa = NeuroMFA(
        n_neurons=args.n_neurons, n_mlp_neurons=args.n_mlp_neurons, n_samples=args.n_samples,
        min_distance=args.min_distance, max_distance=args.max_distance, decimals=args.decimals,
        min_edges=args.min_edges, derivative=args.derivative, neighbourhood=args.neighbourhood,
        empty_layers=args.empty_layers, spectrum_filter=args.spectrum_filter, dtype=args.dtype,
        device=args.device, verbose=args.verbose)
    try:
        mfa.fit(checkpoints, revisions=args.revisions, steps=args.steps,
                trajectory=args.trajectory)
        mfa.save(out, overwrite=args.overwrite)
    except (MultifractalError, FileNotFoundError, FileExistsError, OSError) as exc:
        print(f"llmfmri mfa: error: {exc}", file=sys.stderr)
        return 1
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = mfa.plot_spectra(title="NeuroMFA spectra (mean over samples)")
        ax.figure.savefig(out / "spectra.png", dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        fig = mfa.plot_emergence()
        fig.savefig(out / "emergence.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
    cols = [c for c in ("step", "alpha0", "width", "emergence", "train_loss", "val_loss")
            if c in mfa.results_]
    print(mfa.results_[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out}")
    return 0


def main(argv=None):  # pragma: no cover - convenience: python -m llmfmri.multifractal._cli
    import argparse

    parser = argparse.ArgumentParser(prog="llmfmri")
    sub = parser.add_subparsers(dest="command", required=True)
    add_mfa_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
