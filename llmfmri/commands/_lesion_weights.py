"""The weight-lesion part of ``llmfmri lesion``: ``--weights``, ``--dimension``, ``--truncation``.

Not a command of its own: :mod:`llmfmri.commands.lesion` adds these options
(:func:`add_weight_arguments`) and hands a command line that asks for a weight
lesion (:func:`wants_weights`) to :func:`run_weights`. It reuses the lesion
command's ``--out --model --revision --device --strategy --factor --n-random
--texts --tasks --seed --batch-size --max-length --overwrite`` and adds only the
options below.
"""

from pathlib import Path

from ._common import MATRIX_KINDS, print_lesion_summary

WEIGHT_EPILOG = """\
weight lesions (instead of localized units):
  llmfmri lesion --weights runs/imp/region-core.json --controls runs/imp/region-bottom.json \\
      --n-random 5 --out runs/core --tasks
  llmfmri lesion --dimension 1 100 --strategy scale --factor 4 --n-random 10 --out runs/dim
  llmfmri lesion --truncation mlp_in 27 0.01 --n-random 5 --out runs/laser27
"""


def add_weight_arguments(parser):
    """Add the weight-lesion options to the ``lesion`` parser (which has the shared ones)."""
    group = parser.add_argument_group(
        "weight lesions", "lesion weights instead of localized units (one of these three); "
                          "--strategy zero, scale (--factor) or noise (--sigma)")
    which = group.add_mutually_exclusive_group()
    which.add_argument("--weights", default=None, metavar="REGION",
                       help="a saved weight region (<name>.json from llmfmri importance); "
                            "controls: --n-random random regions with the same count in every "
                            "matrix, and --controls")
    which.add_argument("--dimension", nargs=2, type=int, default=None, metavar=("LAYER", "DIM"),
                       help="the weights reading and writing hidden dimension DIM of layer "
                            "LAYER; controls: --n-random random dimensions of the same layer")
    which.add_argument("--truncation", nargs=3, default=None, metavar=("MATRIX", "LAYER", "RHO"),
                       help="low-rank truncation of one matrix (q k v o mlp_gate mlp_in "
                            "mlp_out); controls: --n-random truncations keeping as many random "
                            "singular components")
    group.add_argument("--controls", nargs="+", default=None, metavar="REGION",
                       help="saved regions lesioned as controls too (e.g. region-bottom.json), "
                            "each its own control kind (named after its label)")
    group.add_argument("--sigma", type=float, default=None,
                       help="noise SD in units of each matrix's weight SD (--strategy noise)")
    group.add_argument("--dimension-space", choices=["residual", "mlp"], default="residual",
                       help="residual-stream coordinate or MLP neuron (default residual)")
    group.add_argument("--dimension-side", choices=["both", "read", "write"], default="both",
                       help="perturb the weights that read, write or both (default both)")


def wants_weights(args):
    """Whether the command line asks for a weight lesion."""
    return any(getattr(args, a, None) is not None for a in ("weights", "dimension", "truncation"))


def _truncation_args(values):
    from .._utils import check_fraction, check_option
    matrix, layer, rho = values
    try:
        layer, rho = int(layer), float(rho)
    except ValueError:
        raise ValueError(f"--truncation needs MATRIX LAYER RHO, e.g. 'mlp_in 27 0.01', but got "
                         f"{' '.join(values)!r}.") from None
    check_option("--truncation MATRIX", matrix, MATRIX_KINDS)
    if layer < 0:
        raise ValueError(f"--truncation LAYER must be a layer index >= 0, but got {layer}.")
    check_fraction("--truncation RHO", rho, inclusive=(True, True))
    return matrix, layer, rho


def _check_settings(args):
    """What can be checked before a model is loaded: strategy and its parameters."""
    if args.truncation is not None:
        given = [f"--{a}" for a in ("factor", "sigma") if getattr(args, a) is not None]
        if args.strategy != "zero" or given:
            raise ValueError(
                f"--truncation replaces a matrix by its low-rank approximation and takes no "
                f"strategy, but got --strategy {args.strategy}"
                + (f" and {' '.join(given)}" if given else "") + "; leave them out.")
        return
    if args.strategy not in ("zero", "scale", "noise"):
        raise ValueError(f"--strategy {args.strategy} lesions units only; weight lesions take "
                         "zero, scale (--factor) or noise (--sigma).")


def _plan(args, model):
    """The lesion and its controls from the command line."""
    from ..lesions import (SVDCache, Truncation, WeightLesion, dimension_region, load_region,
                           random_dimensions, random_regions)

    strategy, factor, sigma, seed = args.strategy, args.factor, args.sigma, args.seed
    _check_settings(args)
    controls = {}
    n_random = int(args.n_random)
    if n_random < 0:
        raise ValueError(f"--n-random must be >= 0, but got {n_random}.")
    if args.truncation is not None:
        matrix, layer, rho = _truncation_args(args.truncation)
        from ..models import get_adapter

        n_layers = get_adapter(model).n_layers
        if layer >= n_layers:
            raise ValueError(f"--truncation LAYER {layer} is not a layer of the model: it has "
                             f"{n_layers} layers, 0..{n_layers - 1}.")
        cache = SVDCache()
        main = Truncation(matrix, layer, rho, svd_cache=cache)
        if n_random:
            controls["random"] = [Truncation(matrix, layer, rho, components="random",
                                             random_state=seed + k, svd_cache=cache)
                                  for k in range(n_random)]
        return main, controls, 0

    def make(region):
        return WeightLesion(region, strategy, factor=factor, sigma=sigma, random_state=seed)

    if args.dimension is not None:
        layer, dim = args.dimension
        kw = dict(side=args.dimension_side, space=args.dimension_space)
        region = dimension_region(model, layer, dim, **kw)
        main = make(region)
        if n_random:
            dims = random_dimensions(model, layer, n_random, exclude=[dim],
                                     space=args.dimension_space, random_state=seed)
            controls["random"] = [make(dimension_region(model, layer, d, **kw)) for d in dims]
        return main, controls, 0
    region = load_region(args.weights)
    region.check_model(model)
    main = make(region)
    for path in args.controls or ():
        c = load_region(path)
        controls.setdefault(c.label, []).append(make(c))
    if n_random:
        controls["random"] = [make(r) for r in random_regions(region, n_random,
                                                              random_state=seed)]
    return main, controls, 0


def record_command(path, args):
    """Add the exact command line to a study's JSON (what ``llmfmri report`` shows)."""
    import json

    from .._utils import atomic_write_json

    command = getattr(args, "command_line", None)
    if command and path.is_file():
        data = json.loads(path.read_text())
        data["command"] = command
        atomic_write_json(path, data, overwrite=True)


def run_weights(args):
    """Run ``llmfmri lesion`` with ``--weights``, ``--dimension`` or ``--truncation``."""
    from ..io import OutputSet
    from ..lesions import DEFAULT_TASKS, default_text_sets, weight_lesion_study
    from ..models import load_model
    from ..paradigm import load_paradigm
    from .importance import gather_texts

    if args.controls and args.weights is None:
        raise ValueError("--controls goes with --weights (saved regions).")
    if args.weights is not None:
        stem = str(args.weights)
        for suffix in (".json", ".safetensors"):
            stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
        for p in [stem + ".json", stem + ".safetensors"] + list(args.controls or ()):
            if not Path(p).is_file():
                raise FileNotFoundError(f"Region file {p} does not exist.")
    if args.truncation is not None:
        _truncation_args(args.truncation)
    _check_settings(args)
    tasks = [load_paradigm(t) for t in (DEFAULT_TASKS if args.tasks is None else args.tasks)]
    texts = gather_texts(args.texts, None, default=None) if args.texts else default_text_sets()
    early = OutputSet(args.out, overwrite=args.overwrite)
    early.add_json("weight-lesion.json", {})
    early.check()
    model = load_model(args.model, revision=args.revision, device=args.device)
    main, controls, n_random = _plan(args, model)
    study = weight_lesion_study(model, main, controls=controls, n_random=n_random, texts=texts,
                                tasks=tasks, random_state=args.seed, batch_size=args.batch_size,
                                max_length=args.max_length, out=args.out,
                                overwrite=args.overwrite, verbose=args.verbose)
    record_command(Path(args.out) / "weight-lesion.json", args)
    print(main)
    print_lesion_summary(study)
    print(f"Wrote the weight-lesion tables and weight-lesion.json to {args.out}")
    return 0
