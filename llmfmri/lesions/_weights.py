"""Weight matrices of the transformer blocks, and weight lesions that always restore them.

A *matrix* is one weight matrix of one block, named ``layers.{i}.{kind}`` with
kind in :data:`MATRIX_KINDS`, in ``(out_features, in_features)`` orientation
(rows index what the matrix writes, columns what it reads), as the
architecture adapters give them (``ArchitectureAdapter.weight_matrices``):
GPT-2's transposed Conv1D weights and fused q/k/v weights are addressed in
place, through the parameter that holds them.

:func:`weight_lesion` edits chosen entries of chosen matrices while a block
runs: every original value it overwrites is saved first and written back when
the block exits, also after an exception inside it, so the model is
bit-identical afterwards. torch is imported inside the functions only.
"""

from __future__ import annotations

import numbers
import re

import numpy as np

from .._utils import check_option, check_random_state, logger, use_log_level
from ..exceptions import DataError

__all__ = ["MATRIX_KINDS", "WEIGHT_STRATEGIES", "matrix_names", "matrix_shapes", "WeightLesion",
           "weight_lesion"]

#: Matrix kinds of a block (``mlp_gate`` only in gated MLPs such as LLaMA's).
MATRIX_KINDS = ("q", "k", "v", "o", "mlp_gate", "mlp_in", "mlp_out")

#: What :class:`WeightLesion` does to the chosen entries.
WEIGHT_STRATEGIES = {
    "zero": "set to 0 (Zhang et al. 2024: removing a region)",
    "scale": "multiplied by factor (e.g. 4: the dimension perturbation of Zhang et al.)",
    "noise": "Gaussian noise added: sigma times the SD of the matrix's weights (seeded)",
}

_NAME = re.compile(r"layers\.(\d+)\.([a-z_]+)")


def parse_matrix_name(name):
    """``"layers.3.mlp_in"`` -> ``(3, "mlp_in")``; ValueError for anything else."""
    m = _NAME.fullmatch(str(name))
    if m is None or m.group(2) not in MATRIX_KINDS:
        from .._utils import did_you_mean

        kind = m.group(2) if m is not None else str(name)
        raise ValueError(
            f"A weight matrix is named 'layers.<i>.<kind>' with kind in {list(MATRIX_KINDS)}, "
            f"but got {name!r}." + did_you_mean(kind, MATRIX_KINDS))
    return int(m.group(1)), m.group(2)


def matrix_name(layer, kind):
    return f"layers.{int(layer)}.{kind}"


class _Matrix:
    """One weight matrix, addressed inside the parameter that holds it.

    ``read(source)`` gives the matrix ``(out, in)`` from the parameter's data
    (or from any tensor shaped like the parameter, e.g. its gradient);
    ``positions(mask)`` gives the flat positions, in the parameter, of the
    entries selected by a boolean mask over the matrix (row-major order).
    """

    __slots__ = ("name", "layer", "kind", "param", "param_name", "shape", "stride", "offset",
                 "index")

    def __init__(self, name, param, param_name, shape, *, stride=None, offset=None, index=None):
        self.name = name
        self.layer, self.kind = parse_matrix_name(name)
        self.param, self.param_name = param, param_name
        self.shape = tuple(int(s) for s in shape)
        self.stride, self.offset, self.index = stride, offset, index

    def __repr__(self):
        return f"_Matrix({self.name!r}, shape={self.shape}, param={self.param_name!r})"

    @property
    def numel(self):
        return self.shape[0] * self.shape[1]

    def _flat(self, source=None):
        src = self.param.data if source is None else source
        return src.reshape(-1) if src.is_contiguous() else src.contiguous().reshape(-1)

    def read(self, source=None):
        """The matrix (a view of ``source`` where possible; a copy for gathered matrices)."""
        flat = self._flat(source)
        if self.index is None:
            return flat.as_strided(self.shape, self.stride, flat.storage_offset() + self.offset)
        return flat[self.index]

    def positions(self, mask=None):
        """Flat positions in the parameter of the entries of ``mask`` (numpy bool), row-major."""
        import torch

        if mask is None:
            sel = np.arange(self.numel, dtype=np.int64)
        else:
            sel = np.flatnonzero(np.asarray(mask).reshape(-1))
        sel = torch.from_numpy(np.ascontiguousarray(sel, dtype=np.int64))
        if self.index is not None:
            return self.index.reshape(-1)[sel.to(self.index.device)]
        rows, cols = sel // self.shape[1], sel % self.shape[1]
        pos = self.offset + rows * self.stride[0] + cols * self.stride[1]
        return pos.to(self.param.device)

    def positions_of(self, rows=None, cols=None):
        """Flat positions of whole rows and/or columns (their union), row-major order."""
        mask = np.zeros(self.shape, dtype=bool)
        if rows is not None:
            mask[np.asarray(rows, dtype=np.int64), :] = True
        if cols is not None:
            mask[:, np.asarray(cols, dtype=np.int64)] = True
        return self.positions(mask)


def _holder(params, w):
    """The parameter whose memory holds tensor ``w`` (a view of it), or None."""
    start = w.data_ptr()
    for n, p in params:
        a = p.data_ptr()
        if p.dtype == w.dtype and a <= start < a + p.numel() * p.element_size():
            return n, p
    return None


def _gathered(block, adapter, layer, missing):
    """Flat indices, per parameter, of matrices that are copies (NeoX's interleaved q/k/v).

    Every floating parameter of the block is swapped for a float64 tensor of
    global ids for the time of one call of ``weight_matrices``, which is then
    read back: each entry's id says which parameter and which position it came
    from. The original tensors are put back before returning.
    """
    import torch

    params = [(n, p) for n, p in block.named_parameters() if p.is_floating_point()]
    saved, start, spans = [], 0, []
    try:
        for n, p in params:
            saved.append((p, p.data))
            p.data = torch.arange(start, start + p.numel(), dtype=torch.float64,
                                  device=p.device).view(p.shape)
            spans.append((start, start + p.numel(), n, p))
            start += p.numel()
        ids = {k: v.detach().clone() for k, v in adapter.weight_matrices(layer).items()
               if k in missing}
    finally:
        for p, data in saved:
            p.data = data
    out = {}
    for kind, t in ids.items():
        t = t.to(torch.int64)
        lo = int(t.min())
        for a, b, n, p in spans:
            if a <= lo < b:
                if int(t.max()) >= b:
                    raise DataError(f"Matrix {kind!r} of layer {layer} spans several parameters; "
                                    "it cannot be addressed in place.")
                out[kind] = (n, p, (t - a).to(p.device))
                break
    return out


def model_matrices(model, kinds=None, layers=None):
    """``{name: _Matrix}`` of the block matrices (layer order, then :data:`MATRIX_KINDS`)."""
    from ..models import get_adapter

    adapter = get_adapter(model)
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        for k in kinds:
            check_option("kinds", k, MATRIX_KINDS)
    layers = range(adapter.n_layers) if layers is None else _check_layers(layers, adapter)
    out = {}
    for layer in layers:
        block = adapter.block(layer)
        params = list(block.named_parameters())
        mats = adapter.weight_matrices(layer)
        missing = []
        found = {}
        for kind, w in mats.items():
            if kinds is not None and kind not in kinds:
                continue
            hit = _holder(params, w)
            if hit is None:
                missing.append(kind)
                continue
            n, p = hit
            if not p.is_contiguous():
                raise DataError(f"Parameter {n!r} of layer {layer} is not contiguous; weight "
                                "lesions need contiguous parameters.")
            offset = (w.data_ptr() - p.data_ptr()) // p.element_size()
            found[kind] = (n, p, tuple(w.stride()), offset, tuple(w.shape))
        gathered = _gathered(block, adapter, layer, missing) if missing else {}
        for kind in MATRIX_KINDS:
            name = matrix_name(layer, kind)
            if kind in found:
                n, p, stride, offset, shape = found[kind]
                out[name] = _Matrix(name, p, f"layers.{layer}.{n}", shape, stride=stride,
                                    offset=offset)
            elif kind in gathered:
                n, p, index = gathered[kind]
                out[name] = _Matrix(name, p, f"layers.{layer}.{n}", tuple(index.shape),
                                    index=index)
    if not out:
        raise DataError(f"The model has no weight matrix of kinds {kinds} in layers "
                        f"{list(layers)}.")
    return out


def _check_layers(layers, adapter):
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        layers = [layers]
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 0 <= int(layer) < adapter.n_layers:
            raise ValueError(f"layers must be whole numbers in 0..{adapter.n_layers - 1} (this "
                             f"{adapter.family} model has {adapter.n_layers} layers), but got "
                             f"{layer!r}.")
        out.append(int(layer))
    return sorted(set(out))


def matrix_names(model, kinds=None, layers=None):
    """Names ``layers.{i}.{kind}`` of the model's block matrices.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    kinds : str or list of str, optional
        Among :data:`MATRIX_KINDS` (default all the model has; ``mlp_gate``
        only in gated MLPs).
    layers : int or list of int, optional

    Returns
    -------
    list of str

    Examples
    --------
    >>> from llmfmri.lesions import matrix_names
    >>> from llmfmri.models import tiny_model
    >>> matrix_names(tiny_model("gpt2"), layers=0)
    ['layers.0.q', 'layers.0.k', 'layers.0.v', 'layers.0.o', 'layers.0.mlp_in', 'layers.0.mlp_out']
    """
    return list(model_matrices(model, kinds, layers))


def matrix_shapes(model, kinds=None, layers=None):
    """``{name: (out_features, in_features)}`` of the model's block matrices."""
    return {n: m.shape for n, m in model_matrices(model, kinds, layers).items()}


# ------------------------------------------------------------------------- edits
class _Edit:
    """New values for some entries of one parameter: ``flat[positions] = values``."""

    __slots__ = ("param", "positions", "values", "saved")

    def __init__(self, param, positions, values):
        self.param, self.positions, self.values = param, positions, values
        self.saved = None

    def apply(self):
        flat = self.param.data.view(-1)
        self.saved = flat[self.positions].clone()
        flat[self.positions] = self.values.to(flat.dtype)

    def restore(self):
        if self.saved is not None:
            self.param.data.view(-1)[self.positions] = self.saved
            self.saved = None


def _check_real(name, value, *, positive=False):
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.isfinite(value) and (value > 0 or not positive))
    if not ok:
        what = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, but got {value!r}.")
    return float(value)


class WeightLesion:
    """A weight lesion to apply: which entries of which matrices, and what they become.

    Nothing happens until it is applied with :func:`weight_lesion`; every check
    that does not need the model happens here.

    Parameters
    ----------
    region : WeightRegion
        The entries (boolean masks over matrices): from
        :meth:`ParameterImportance.region`, :func:`random_regions`,
        :func:`dimension_region`, :meth:`WeightRegion.from_entries`...
    strategy : {"zero", "scale", "noise"}, default="zero"
        ``"zero"``: set to 0; ``"scale"``: multiply by ``factor``;
        ``"noise"``: add ``sigma * sd(W) * N(0, 1)``, ``sd(W)`` the standard
        deviation of all weights of the entry's matrix (seeded).
    factor : float, optional
        Required by ``"scale"``.
    sigma : float, default=1.0
        Noise SD in units of the matrix's weight SD (``"noise"``).
    random_state : int or numpy Generator, optional
        Seeds the noise (one torch generator per matrix, drawn when applied).
    label : str, optional
        Name in tables (default: the region's label).

    Raises
    ------
    ValueError
        An unknown strategy; ``factor`` missing for ``"scale"`` or given for
        another strategy; a bad ``sigma``.
    TypeError
        ``region`` is not a WeightRegion.
    """

    def __init__(self, region, strategy="zero", *, factor=None, sigma=None, random_state=None,
                 label=None):
        from ._regions import WeightRegion

        if not isinstance(region, WeightRegion):
            raise TypeError(f"region must be a WeightRegion (ParameterImportance.region, "
                            f"random_regions, dimension_region...), but got "
                            f"{type(region).__name__}.")
        self.strategy = check_option("strategy", strategy, tuple(WEIGHT_STRATEGIES))
        if strategy == "scale":
            if factor is None:
                raise ValueError("strategy='scale' needs factor=..., e.g. factor=4.")
            factor = _check_real("factor", factor)
        elif factor is not None:
            raise ValueError(f"factor is used by strategy='scale' only, but strategy="
                             f"{strategy!r}.")
        if sigma is not None and strategy != "noise":
            raise ValueError(f"sigma is used by strategy='noise' only, but strategy="
                             f"{strategy!r}.")
        self.sigma = _check_real("sigma", 1.0 if sigma is None else sigma, positive=True)
        self.factor = factor
        self.region = region
        self.random_state = random_state
        check_random_state(random_state)
        self._label = label

    @property
    def label(self):
        return self._label or self.region.label

    @property
    def n_params(self):
        """Number of weights edited."""
        return self.region.n_params

    def __repr__(self):
        extra = (f", factor={self.factor:g}" if self.strategy == "scale" else
                 f", sigma={self.sigma:g}" if self.strategy == "noise" else "")
        return (f"WeightLesion({self.label!r}, strategy={self.strategy!r}, "
                f"n_params={self.n_params}{extra})")

    def describe(self):
        """The lesion as a dict (for tables)."""
        return {"label": self.label, "kind": "weights", "strategy": self.strategy,
                "n_params": self.n_params, "n_matrices": len(self.region.nonempty()),
                "factor": self.factor,
                "sigma": self.sigma if self.strategy == "noise" else None}

    def _edits(self, model):
        import torch

        mats = model_matrices(model)
        self.region.check_model(mats)
        rng = check_random_state(self.random_state)
        edits = []
        for name in self.region.nonempty():
            m, mask = mats[name], self.region.masks[name]
            pos = m.positions(mask)
            old = m.param.data.view(-1)[pos]
            if self.strategy == "zero":
                new = torch.zeros_like(old)
            elif self.strategy == "scale":
                new = old * self.factor
            else:
                w = m.read()
                sd = float(w.double().std()) if w.numel() > 1 else 0.0
                g = torch.Generator(device="cpu")
                g.manual_seed(int(rng.integers(0, 2 ** 62)))
                noise = torch.randn(old.shape, generator=g, dtype=torch.float64)
                new = (old.double() + self.sigma * sd * noise.to(old.device)).to(old.dtype)
            edits.append(_Edit(m.param, pos, new))
        return edits


class _WeightLesionContext:
    """The context manager :func:`weight_lesion` returns."""

    def __init__(self, model, lesions, verbose):
        self.model, self.lesions, self.verbose = model, lesions, verbose
        self._applied = None

    def __repr__(self):
        state = "active" if self._applied is not None else "inactive"
        return f"<weight lesion of {self.n_params} weights ({state}): {self.lesions}>"

    @property
    def n_params(self):
        return sum(les.n_params for les in self.lesions)

    def __enter__(self):
        import torch

        if self._applied is not None:
            raise RuntimeError("This weight lesion is already active; nest a new "
                               "weight_lesion(...) instead.")
        with use_log_level(self.verbose), torch.no_grad():
            applied = []
            try:
                for les in self.lesions:
                    edits = les._edits(self.model)  # every check before the first write
                    for e in edits:
                        e.apply()
                        applied.append(e)
                    logger.info("weight lesion %r: %s of %d weights in %d matrices", les.label,
                                getattr(les, "strategy", "edit"), les.n_params, len(edits))
            except BaseException:
                for e in reversed(applied):
                    e.restore()
                raise
        self._applied = applied
        return self

    def __exit__(self, *exc):
        import torch

        applied, self._applied = self._applied, None
        if applied:
            with torch.no_grad():
                for e in reversed(applied):  # reverse order: overlapping edits restore exactly
                    e.restore()
        return False


def weight_lesion(model, region, strategy="zero", *, factor=None, sigma=None, random_state=None,
                  label=None, verbose=None):
    """Edit weights of a model while a block runs (a context manager); always restored.

    The chosen entries are overwritten in place when the block is entered;
    every value overwritten is saved first and written back when the block
    exits -- also after an exception inside it -- so the model is
    bit-identical afterwards. ``record(...)`` inside the block records the
    lesioned model; :func:`lesion_contrast` compares it with an intact
    recording. Weight lesions compose with each other (nest blocks, or give a
    list) and with unit lesions (:func:`lesion`).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    region : WeightRegion, WeightLesion, Truncation, or a list of WeightLesion / Truncation
        What to edit: a region (with ``strategy``...), or ready-made lesions
        (applied in list order).
    strategy : {"zero", "scale", "noise"}, default="zero"
    factor, sigma, random_state, label
        See :class:`WeightLesion`.
    verbose : None, bool or int, optional

    Returns
    -------
    context manager
        ``with weight_lesion(...) as les:`` gives an object with ``lesions``
        and ``n_params``.

    Raises
    ------
    ValueError, TypeError
        Bad strategy or parameters.
    DataError
        A region of another model (matrix names or shapes that do not fit),
        checked before the first weight is written.

    Examples
    --------
    >>> from llmfmri.models import tiny_model
    >>> from llmfmri.lesions import WeightRegion, weight_lesion
    >>> model = tiny_model("llama")
    >>> region = WeightRegion.from_entries(model, {"layers.1.o": [(3, 5)]})
    >>> with weight_lesion(model, region) as les:
    ...     les.n_params
    1
    """
    lesions = _as_weight_lesions(region, strategy, dict(factor=factor, sigma=sigma,
                                                        random_state=random_state, label=label))
    return _WeightLesionContext(model, lesions, verbose)


def _is_lesion(obj):
    return hasattr(obj, "_edits") and hasattr(obj, "n_params") and not isinstance(obj, type)


def _as_weight_lesions(region, strategy, kwargs):
    if _is_lesion(region):
        region = [region]
    if isinstance(region, (list, tuple)):
        if not region:
            raise DataError("No weight lesion given: region is an empty list.")
        if not all(_is_lesion(r) for r in region):
            raise TypeError("region is a list: give WeightLesion or Truncation objects only "
                            "(each with its own strategy), or one WeightRegion.")
        changed = [k for k, v in kwargs.items() if v is not None] + (
            ["strategy"] if strategy != "zero" else [])
        if changed:
            raise ValueError(f"region is a list of ready-made lesions, each with its own "
                             f"settings; {changed} cannot be given as well.")
        return list(region)
    return [WeightLesion(region, strategy, **kwargs)]


def snapshot_parameters(model):
    """Clones of every parameter (for tests and for :func:`further_training`'s restore)."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}
