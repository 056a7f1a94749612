"""The lesion and truncation axes of a sweep, and its behaviour step, run with llmfmri.lesions.

Nothing here re-implements a lesion: a cell's lesion is a context manager of
:mod:`llmfmri.lesions` (``lesion`` for units, ``weight_lesion`` for weight regions and
dimensions, ``Truncation`` / ``truncate`` for low-rank truncations), entered around the
cell's recording, analysis and behaviour; its control draws are the library's matched
controls (``random_controls``, ``random_regions``, random dimensions of the same layer,
``Truncation(components="random")``).
"""

from __future__ import annotations

from pathlib import Path

from .._utils import logger
from ..exceptions import DataError
from ..io import read_tsv, write_tsv
from ._spec import lesion_kind

__all__ = ["enter_lesions", "load_network_file", "score_cell_behaviour", "BEHAVIOUR_FILE",
           "BEHAVIOUR_ITEMS_FILE"]

BEHAVIOUR_FILE = "behaviour.tsv"
BEHAVIOUR_ITEMS_FILE = "behaviour-items.tsv"


def _resolve(value, base_dir):
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(base_dir) / path


def load_network_file(path, model=None, *, label=None):
    """A network saved by the networks step (``_units.tsv`` or ``_mask.nii.gz``), as a Network.

    :func:`llmfmri.networks.load_network`, placed in the recording's ``units.tsv``
    found next to the file or in the folder above it, so that controls are drawn
    among the units the network was chosen from. Without it, a ``_units.tsv`` is
    placed in the full width of its sites in ``model``.

    Parameters
    ----------
    path : str or Path
        ``..._units.tsv`` (columns ``site`` and ``index``) or ``..._mask.nii.gz``.
    model : transformers.PreTrainedModel, optional
        Sizes the sites when no ``units.tsv`` is found.
    label : str, optional
        The network's label.

    Returns
    -------
    Network

    Raises
    ------
    FileNotFoundError
        A missing file, or a mask without a ``units.tsv`` to place it.
    DataError
        A table without ``site`` and ``index`` columns, or units not in the unit space.
    """
    from ..networks import load_network
    from ..units import UnitSpace

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Network file {path} does not exist.")
    label = label or path.name
    try:
        return load_network(path, label=label)
    except FileNotFoundError:  # no units.tsv near it: a mask cannot be placed, a table can
        if path.name.endswith((".nii.gz", ".nii")):
            raise
    table = read_tsv(path, dtype={"site": str})
    if "site" not in table.columns:
        raise DataError(f"{path} is not a network's unit table: it lacks ['site'] (columns: "
                        f"{list(table.columns)}); give a _units.tsv of the networks step.")
    if model is None:
        raise DataError(f"No units.tsv next to {path}, and no model to size its sites.")
    from ..models import get_adapter

    adapter = get_adapter(model)
    space = UnitSpace({s: adapter.site_size(s) for s in dict.fromkeys(table["site"])})
    return load_network(path, space, label=label)


def _lesion_context(model, spec, role, draw, base_dir):
    """The context manager of one lesion (or of its control draw ``draw``), and its description."""
    import llmfmri.lesions as ls

    kind = lesion_kind(spec)
    n, rs = int(spec.get("controls", 0)), int(spec.get("random_state", 0))
    control = role == "control"
    if control and not 1 <= draw <= n:
        raise DataError(f"Control draw {draw} of lesion {spec.get('label')!r} is not among its "
                        f"{n} controls.")
    strategy = spec.get("strategy", "zero")
    if kind == "units":
        net = load_network_file(_resolve(spec["units"], base_dir), model, label=spec["label"])
        units = ls.random_controls(net, n=n, random_state=rs)[draw - 1] if control else net
        reference = None
        if spec.get("reference") is not None:
            from ..recording import load_recording

            reference = load_recording(_resolve(spec["reference"], base_dir))
        ctx = ls.lesion(model, units, strategy, reference=reference, sigma=spec.get("sigma"),
                        factor=spec.get("factor"),
                        random_state=rs if strategy in ("noise", "resample") else None)
        what = {"n_units": int(units.n_units), "units": units.label}
        return ctx, what
    if kind == "truncation":
        matrix, layer, rho = spec["truncation"]
        les = ls.Truncation(matrix, int(layer), float(rho),
                            components="random" if control else "top",
                            random_state=rs + draw if control else None)
        return ls.weight_lesion(model, les), {"truncation": les.label}
    if kind == "weights":
        region = ls.load_region(_resolve(spec["weights"], base_dir))
        region.check_model(model)
        if control:
            region = ls.random_regions(region, n, random_state=rs)[draw - 1]
    else:
        layer, dim = (int(x) for x in spec["dimension"])
        ls.dimension_region(model, layer, dim)  # the lesioned dimension exists, even in a control
        if control:
            dim = ls.random_dimensions(model, layer, n, exclude=[dim], random_state=rs)[draw - 1]
        region = ls.dimension_region(model, layer, dim)
    les = ls.WeightLesion(region, strategy, factor=spec.get("factor"), sigma=spec.get("sigma"),
                          random_state=rs if strategy == "noise" else None)
    what = {"n_params": int(region.n_params), "region": region.label}
    if kind == "dimension":
        what["dimension"] = [layer, dim]
    return ls.weight_lesion(model, les), what


def enter_lesions(stack, model, params, base_dir):
    """Enter the cell's lesion and truncation (from its parameters) on ``stack``.

    Parameters
    ----------
    stack : contextlib.ExitStack
        Closing it restores the model (hooks removed, weights written back).
    model : transformers.PreTrainedModel
    params : dict
        The cell's parameters: ``lesion`` (``"none"`` or the value's mapping),
        ``lesion_role``, ``draw``; ``truncation_matrix``, ``truncation_layer``, ``rho``.
    base_dir : str or Path
        The sweep file's folder (files of the lesion are relative to it).

    Returns
    -------
    dict
        What was applied (for ``cell.json``): ``lesion`` and/or ``truncation``; empty
        for an intact cell.

    Raises
    ------
    DataError, FileNotFoundError, ValueError
        From :mod:`llmfmri.lesions` (a region or units of another model, a dimension
        outside the model...), before the model is touched.
    """
    applied = {}
    spec = params.get("lesion")
    if isinstance(spec, dict):
        role, draw = params.get("lesion_role", "lesion"), int(params.get("draw", 0))
        ctx, what = _lesion_context(model, spec, role, draw, base_dir)
        stack.enter_context(ctx)
        applied["lesion"] = {"label": spec.get("label"), "kind": lesion_kind(spec),
                             "role": role, "draw": draw, **what}
        logger.info("sweep cell: %s lesion %r (%s %d): %s", lesion_kind(spec), spec.get("label"),
                    role, draw, what)
    if params.get("rho") is not None and "truncation_matrix" in params:
        from ..lesions import truncate

        matrix, layer, rho = (params["truncation_matrix"], int(params["truncation_layer"]),
                              float(params["rho"]))
        if rho < 1:  # rho = 1 keeps the full rank: the intact matrix, not its SVD round trip
            ctx = stack.enter_context(truncate(model, matrix, layer, rho))
            applied["truncation"] = ctx.lesions[0].describe()
        else:
            applied["truncation"] = {"matrix": matrix, "layer": layer, "rho": rho,
                                     "rank": "full (intact)"}
    return applied


def score_cell_behaviour(model, options, base_dir, folder):
    """Score behaviour (perplexity per text set, task accuracy) and write it into ``folder``.

    Run it inside the cell's lesion: :func:`llmfmri.lesions.score_behaviour` per item,
    summarised by :func:`llmfmri.lesions.behaviour_table` (bootstrap over items for
    perplexity, Wilson for accuracy).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    options : dict
        The sweep's ``behaviour`` block: ``texts``, ``tasks``, ``max_length``, ``batch_size``.
    base_dir : str or Path
        Files are relative to the sweep file's folder.
    folder : Path
        The cell's folder: ``behaviour.tsv`` (one row per measure, set and subset) and
        ``behaviour-items.tsv`` (one row per item) are written there.

    Returns
    -------
    dict
        ``<measure>_<set>`` -> value over the whole set (``perplexity_science``,
        ``accuracy_template``...), for ``cell.json`` and the tidy table.

    Raises
    ------
    DataError
        Two text sources with a set of the same name.
    """
    from ..lesions import behaviour_table, load_texts, score_behaviour
    from ..paradigm import library_paradigms, load_paradigm

    library = library_paradigms()

    def source(item):
        if item in library or Path(item).suffix not in (".txt", ".tsv", ".yaml", ".yml"):
            return item
        return _resolve(item, base_dir)

    texts = {}
    for item in options.get("texts") or ():
        for name, values in load_texts(source(item)).items():
            if name in texts:
                raise DataError(f"Two text sources of the behaviour step give a set named "
                                f"{name!r} (the second is {item!r}); rename one file.")
            texts[name] = values
    tasks = [load_paradigm(source(t)) for t in options.get("tasks") or ()]
    items = score_behaviour(model, texts=texts or None, tasks=tasks,
                            batch_size=int(options.get("batch_size") or 8),
                            max_length=options.get("max_length"))
    table = behaviour_table(items, by=())
    write_tsv(items, folder / BEHAVIOUR_ITEMS_FILE, overwrite=True)
    write_tsv(table, folder / BEHAVIOUR_FILE, overwrite=True)
    return behaviour_columns(table)


def behaviour_columns(table):
    """``{<measure>_<set>: value}`` of a behaviour table's whole-set rows (``subset == "all"``)."""
    whole = table[table["subset"] == "all"]
    pairs = zip(whole["measure"], whole["set"], whole["value"])
    return {f"{m}_{s}": float(v) for m, s, v in pairs}
