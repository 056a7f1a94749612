"""Dimension perturbation: the weights that read or write one hidden dimension of one layer.

Zhang et al. (2024) found the core region concentrated on a few hidden
dimensions, and that multiplying the weights of one such dimension by 4 in
layer 1 of LLaMA-2-7B destroys language (perplexity 257.7) while a control
dimension does not (5.9). Here a *dimension* of layer ``l`` is a coordinate of
the residual stream (``space="residual"``: the columns ``d`` of q, k, v, the
MLP gate and input matrices, which read it, and the rows ``d`` of the
attention output and MLP output matrices, which write it) or an MLP neuron
(``space="mlp"``: rows of the MLP input/gate matrices, column of the MLP
output matrix). :func:`dimension_scan` perturbs each dimension in turn and
measures perplexity; :func:`compare_dimensions` tests chosen dimensions on
held-out text against random control dimensions of the same layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._utils import (check_option, check_positive_int, check_random_state, logger, progress_bar,
                      with_verbose)
from ..exceptions import DataError
from ._regions import WeightRegion, _shapes
from ._weights import WeightLesion, parse_matrix_name, weight_lesion

__all__ = ["DIMENSION_SPACES", "dimension_region", "dimension_lesion", "dimension_profile",
           "dimension_scan", "DimensionScan", "compare_dimensions", "random_dimensions"]

#: Which slices of which matrices read / write a dimension: kind -> "row" or "col".
_SLICES = {
    "residual": {"read": {"q": "col", "k": "col", "v": "col", "mlp_gate": "col",
                          "mlp_in": "col"},
                 "write": {"o": "row", "mlp_out": "row"}},
    "mlp": {"read": {"mlp_out": "col"}, "write": {"mlp_gate": "row", "mlp_in": "row"}},
}

#: Hidden spaces a dimension can live in.
DIMENSION_SPACES = {
    "residual": "a residual-stream coordinate: read by columns of q, k, v, mlp_gate, mlp_in; "
                "written by rows of o, mlp_out",
    "mlp": "an MLP neuron: written by rows of mlp_in (and mlp_gate); read by a column of mlp_out",
}
_SIDES = ("read", "write", "both")


def _slices(space, side):
    check_option("space", space, tuple(DIMENSION_SPACES))
    check_option("side", side, _SIDES)
    sides = ("read", "write") if side == "both" else (side,)
    out = {}
    for s in sides:
        for kind, axis in _SLICES[space][s].items():
            out.setdefault(kind, set()).add(axis)
    return out


def _width(shapes, layer, space):
    for name, shape in shapes.items():
        lay, kind = parse_matrix_name(name)
        if lay != layer:
            continue
        if space == "residual" and kind in ("q", "mlp_in"):
            return shape[1]
        if space == "mlp" and kind == "mlp_in":
            return shape[0]
    raise DataError(f"The model has no layer {layer} (or no matrix to size its {space} space).")


def dimension_region(model, layer, dim, *, side="both", space="residual", kinds=None,
                     label=None):
    """The weights of layer ``layer`` that read and/or write hidden dimension(s) ``dim``.

    Parameters
    ----------
    model : model, mapping of matrix shapes, or WeightRegion
    layer : int
    dim : int or list of int
    side : {"both", "read", "write"}, default="both"
    space : {"residual", "mlp"}, default="residual"
        See :data:`DIMENSION_SPACES`.
    kinds : list of str, optional
        Keep only these matrix kinds.
    label : str, optional
        Default ``L<layer>-<space>-d<dim>``.

    Returns
    -------
    WeightRegion
        ``rule="dimension"``.

    Examples
    --------
    >>> from llmfmri.models import tiny_model
    >>> from llmfmri.lesions import dimension_region
    >>> r = dimension_region(tiny_model("llama"), 1, 5)
    >>> r.label, sorted(r.counts().query("n_params > 0")["kind"])
    ('L1-residual-d5', ['k', 'mlp_gate', 'mlp_in', 'mlp_out', 'o', 'q', 'v'])
    """
    shapes = _shapes(model)
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be a whole number, but got {layer!r}.")
    layer = int(layer)
    dims = np.atleast_1d(np.asarray(dim))
    if dims.size == 0 or dims.dtype.kind not in "iu":
        raise TypeError(f"dim must be a whole number or a list of them, but got {dim!r}.")
    width = _width(shapes, layer, space)
    if dims.min() < 0 or dims.max() >= width:
        raise DataError(f"dim {int(dims.max()) if dims.max() >= width else int(dims.min())} is "
                        f"outside layer {layer}'s {space} space of width {width} (0..{width - 1}).")
    slices = _slices(space, side)
    masks = {}
    for name, shape in shapes.items():
        lay, kind = parse_matrix_name(name)
        if lay != layer or kind not in slices or (kinds is not None and kind not in kinds):
            continue
        m = np.zeros(shape, dtype=bool)
        if "row" in slices[kind]:
            m[dims, :] = True
        if "col" in slices[kind]:
            m[:, dims] = True
        masks[name] = m
    if not masks:
        raise DataError(f"No matrix of layer {layer} reads or writes a {space} dimension with "
                        f"side={side!r} and kinds={kinds}.")
    tag = "+".join(str(int(d)) for d in dims[:4]) + ("..." if dims.size > 4 else "")
    return WeightRegion(masks, label=label or f"L{layer}-{space}-d{tag}", rule="dimension",
                        info={"layer": layer, "dims": [int(d) for d in dims], "side": side,
                              "space": space})


def dimension_lesion(model, layer, dim, strategy="scale", *, factor=4.0, side="both",
                     space="residual", sigma=None, random_state=None, label=None, verbose=None):
    """Perturb the weights reading/writing one dimension while a block runs (restored after).

    ``strategy="scale"`` with ``factor=4`` is Zhang et al.'s perturbation;
    ``"zero"`` removes the dimension's weights; ``"noise"`` adds Gaussian
    noise. See :func:`dimension_region` and :func:`weight_lesion`.

    Returns
    -------
    context manager
    """
    region = dimension_region(model, layer, dim, side=side, space=space, label=label)
    return weight_lesion(model, WeightLesion(
        region, strategy, factor=factor if strategy == "scale" else None, sigma=sigma,
        random_state=random_state), verbose=verbose)


def dimension_profile(region, *, space="residual", side="both", layers=None):
    """How many of a region's entries lie in each dimension's read/write slices.

    Zhang et al.'s row/column counts (``calculate_row_bool_matrix``): the
    dimensions where the core region concentrates are the candidates for
    :func:`dimension_scan`.

    Parameters
    ----------
    region : WeightRegion
    space, side : see :func:`dimension_region`
    layers : list of int, optional

    Returns
    -------
    pandas.DataFrame
        ``layer, dim, n_entries, n_slice, fraction`` (entries of the region
        in the dimension's slices / size of those slices), sorted by
        ``fraction`` (largest first).
    """
    if not isinstance(region, WeightRegion):
        raise TypeError(f"region must be a WeightRegion, but got {type(region).__name__}.")
    slices = _slices(space, side)
    per_layer = {}
    for name, mask in region.masks.items():
        lay, kind = parse_matrix_name(name)
        if kind not in slices or (layers is not None and lay not in layers):
            continue
        for axis in slices[kind]:
            count = mask.sum(axis=1) if axis == "row" else mask.sum(axis=0)
            size = mask.shape[1] if axis == "row" else mask.shape[0]
            cnt, tot = per_layer.get(lay, (0, 0))
            if isinstance(cnt, int):
                cnt, tot = np.zeros(count.size, np.int64), np.zeros(count.size, np.int64)
            if cnt.size != count.size:
                raise DataError(f"Layer {lay} has {space} slices of different widths.")
            per_layer[lay] = (cnt + count, tot + size)
    if not per_layer:
        raise DataError(f"The region {region.label!r} has no matrix with {space} slices.")
    frames = [pd.DataFrame({"layer": lay, "dim": np.arange(c.size), "n_entries": c,
                            "n_slice": t}) for lay, (c, t) in sorted(per_layer.items())]
    out = pd.concat(frames, ignore_index=True)
    out["fraction"] = out["n_entries"] / out["n_slice"]
    return out.sort_values(["fraction", "layer", "dim"], ascending=[False, True, True],
                           kind="stable").reset_index(drop=True)


def _pooled(scores):
    """Per text set and pooled: ``{set: (nll, n_tokens)}`` with ``"all"``."""
    g = scores.groupby("text_set", sort=False)[["nll", "n_tokens"]].sum()
    out = {s: (float(r.nll), int(r.n_tokens)) for s, r in g.iterrows()}
    out["all"] = (float(g["nll"].sum()), int(g["n_tokens"].sum()))
    return out


def _perturbed_scores(model, texts, layer, dim, strategy, factor, side, space, sigma,
                      random_state, kw):
    from ._scoring import score_texts

    with dimension_lesion(model, layer, dim, strategy, factor=factor, side=side, space=space,
                          sigma=sigma, random_state=random_state):
        return score_texts(model, texts, **kw)


class DimensionScan:
    """What :func:`dimension_scan` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per dimension and text set (and ``"all"``, pooled):
        ``layer, dim, text_set, n_tokens, nll_per_token, perplexity,
        delta_nll`` (lesioned - intact NLL per token), ``ratio`` (perplexity
        lesioned / intact), ``rank`` (of the pooled delta, 1 = most harmful).
    intact : pandas.DataFrame
        ``text_set, n_tokens, nll_per_token, perplexity`` of the intact model.
    settings : dict
    """

    def __init__(self, table, intact, settings):
        self.table, self.intact, self.settings = table, intact, settings

    def __repr__(self):
        return (f"DimensionScan(layer={self.settings['layer']}, n_dims="
                f"{self.table['dim'].nunique()}, strategy={self.settings['strategy']!r})")

    def summary(self):
        """One row per dimension (pooled over text sets), most harmful first."""
        s = self.table[self.table["text_set"] == "all"]
        return s.sort_values("rank").reset_index(drop=True)

    def critical(self, n=5):
        """The ``n`` dimensions whose perturbation raises pooled perplexity most."""
        n = check_positive_int("n", n)
        return [int(d) for d in self.summary()["dim"].head(n)]


@with_verbose
def dimension_scan(model, texts, *, layer, dims=None, strategy="scale", factor=4.0,
                   side="both", space="residual", sigma=None, random_state=0, batch_size=8,
                   max_length=None, progress=False, verbose=None):
    """Perturb each dimension of a layer in turn and measure perplexity (which ones matter?).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : text sets (:func:`load_texts`)
        Keep them small: one scoring pass per dimension.
    layer : int
    dims : list of int, optional
        Default every dimension of the space.
    strategy : {"scale", "zero", "noise"}, default="scale"
    factor : float, default=4.0
    side, space : see :func:`dimension_region`
    sigma, random_state : for ``"noise"``
    batch_size, max_length : see :func:`score_texts`
    progress : bool, default=False

    Returns
    -------
    DimensionScan
    """
    from ._scoring import load_texts, score_texts

    sets = load_texts(texts)
    width = _width(_shapes(model), int(layer), space)
    dims = np.arange(width) if dims is None else np.atleast_1d(np.asarray(dims, dtype=np.int64))
    kw = dict(batch_size=batch_size, max_length=max_length)
    base = _pooled(score_texts(model, sets, **kw))
    intact = pd.DataFrame([{"text_set": s, "n_tokens": n, "nll_per_token": v / n,
                            "perplexity": float(np.exp(v / n))} for s, (v, n) in base.items()])
    rows = []
    bar = progress_bar(total=dims.size, desc=f"scan layer {layer}", unit="dim", verbose=progress)
    try:
        for d in dims:
            sc = _pooled(_perturbed_scores(model, sets, int(layer), int(d), strategy, factor,
                                           side, space, sigma, random_state, kw))
            for s, (v, n) in sc.items():
                b = base[s][0] / base[s][1]
                rows.append({"layer": int(layer), "dim": int(d), "text_set": s, "n_tokens": n,
                             "nll_per_token": v / n, "perplexity": float(np.exp(v / n)),
                             "delta_nll": v / n - b, "ratio": float(np.exp(v / n - b))})
            bar.update(1)
    finally:
        bar.close()
    table = pd.DataFrame(rows)
    pooled = table[table["text_set"] == "all"].set_index("dim")["delta_nll"]
    ranks = pooled.rank(ascending=False, method="first").astype(int)
    table["rank"] = table["dim"].map(ranks)
    logger.info("dimension_scan: layer %d, %d dimensions; most harmful %s", int(layer),
                dims.size, list(pooled.sort_values(ascending=False).index[:5]))
    settings = {"layer": int(layer), "strategy": strategy, "factor": factor, "side": side,
                "space": space, "sigma": sigma, "text_sets": list(sets)}
    return DimensionScan(table, intact, settings)


@with_verbose
def random_dimensions(model, layer, n, *, exclude=(), space="residual", random_state=0):
    """``n`` random dimensions of ``layer``, outside ``exclude``: the controls of a dimension.

    Every control draw of a dimension lesion (:func:`compare_dimensions`,
    ``llmfmri lesion --dimension``, a sweep's ``dimension`` lesion) comes from
    here, so the same seed gives the same controls everywhere.

    Parameters
    ----------
    model : transformers.PreTrainedModel or dict of matrix name -> shape
    layer : int
    n : int
        Number of dimensions, >= 0.
    exclude : list of int, default=()
        Dimensions never drawn (the lesioned one).
    space : {"residual", "mlp"}, default="residual"
    random_state : int or numpy Generator, default=0

    Returns
    -------
    list of int
        Sorted, distinct.

    Raises
    ------
    DataError
        When fewer than ``n`` dimensions remain outside ``exclude``.

    Examples
    --------
    >>> from llmfmri.lesions import random_dimensions
    >>> from llmfmri.models import tiny_model
    >>> random_dimensions(tiny_model("llama"), 1, 3, exclude=[5], random_state=0)
    [16, 20, 25]
    """
    n = check_positive_int("n", n, minimum=0)
    width = _width(_shapes(model), int(layer), space)
    taken = {int(d) for d in exclude}
    pool = np.array([d for d in range(width) if d not in taken])
    if pool.size < n:
        raise DataError(f"Layer {layer} has only {pool.size} dimensions outside {sorted(taken)}; "
                        f"ask for fewer controls (got {n}).")
    rng = check_random_state(random_state)
    return sorted(int(d) for d in rng.choice(pool, size=n, replace=False))


def compare_dimensions(model, texts, *, layer, dims, n_controls=20, exclude=None,
                       strategy="scale", factor=4.0, side="both", space="residual", sigma=None,
                       random_state=0, batch_size=8, max_length=None, progress=False,
                       verbose=None):
    """Chosen dimensions against random control dimensions of the same layer, on (held-out) text.

    Each chosen dimension and each of ``n_controls`` control dimensions
    (drawn uniformly from the layer's other dimensions, outside ``dims`` and
    ``exclude``) is perturbed alone; the effect is the change in pooled NLL
    per token (log perplexity ratio), compared with the controls'
    distribution by :func:`compare_to_controls`. Choose ``dims`` on other text
    (:func:`dimension_scan`) so that the comparison is not circular.

    Returns
    -------
    pandas.DataFrame
        One row per chosen dimension: ``layer, dim, perplexity_intact,
        perplexity, ratio, effect`` (delta NLL per token) and the control
        statistics ``control_mean, control_sd, control_min, control_max,
        n_controls, z, p_empirical``; ``attrs["controls"]`` holds the control
        dimensions' rows.
    """
    from ._controls import compare_to_controls

    n_controls = check_positive_int("n_controls", n_controls)
    dims = [int(d) for d in np.atleast_1d(np.asarray(dims, dtype=np.int64))]
    controls = random_dimensions(model, layer, n_controls,
                                 exclude=dims + [int(d) for d in (exclude or [])], space=space,
                                 random_state=random_state)
    scan = dimension_scan(model, texts, layer=layer, dims=dims + controls, strategy=strategy,
                          factor=factor, side=side, space=space, sigma=sigma,
                          random_state=random_state, batch_size=batch_size,
                          max_length=max_length, progress=progress)
    s = scan.summary().set_index("dim")
    base = float(scan.intact.set_index("text_set").loc["all", "perplexity"])
    ctrl = s.loc[controls, "delta_nll"].to_numpy()
    rows = []
    for d in dims:
        cmp = compare_to_controls(float(s.loc[d, "delta_nll"]), ctrl, alternative="greater")
        rows.append({"layer": int(layer), "dim": d, "perplexity_intact": base,
                     "perplexity": float(s.loc[d, "perplexity"]),
                     "ratio": float(s.loc[d, "ratio"]), **cmp})
    out = pd.DataFrame(rows)
    out.attrs["controls"] = s.loc[controls].reset_index()
    out.attrs["scan"] = scan
    return out
