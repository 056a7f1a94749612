"""``lesion``: edit chosen unit coordinates while a block runs; the model is always restored."""

from __future__ import annotations

import contextlib
import numbers

import numpy as np

from .._utils import check_option, check_random_state, logger, use_log_level
from ..exceptions import DataError
from ._reference import check_reference_model, reference_stats
from ._units import as_lesion_units, model_identity

__all__ = ["Lesion", "lesion", "STRATEGIES"]

#: Lesion strategies: what the chosen coordinates become.
STRATEGIES = {
    "zero": "set to 0 (AlKhamissi et al. 2025)",
    "mean": "set to each unit's mean over a reference recording",
    "noise": "Gaussian noise added, sigma times each unit's SD in a reference recording (seeded)",
    "scale": "multiplied by factor",
    "resample": "replaced by a frame of the same units drawn from a reference recording (seeded)",
}
_NEEDS_REFERENCE = ("mean", "noise", "resample")


def _check_real(name, value, *, positive=False):
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and np.isfinite(value) and (value > 0 or not positive))
    if not ok:
        what = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, but got {value!r}.")
    return float(value)


class Lesion:
    """A lesion to apply: which units, and what they become (nothing happens until applied).

    Apply it with :func:`lesion` (``with lesion(model, Lesion(...)):``), alone or in a
    list with others; every check that does not need the model happens here.

    Parameters
    ----------
    units : Network, DataFrame, {site: indices} or list of (site, index)
        The units (coordinates of site outputs) to lesion: a
        :class:`~llmfmri.networks.Network` (``threshold``, ``top_k``,
        ``random_network``...), a table with ``site`` and ``index`` columns
        (``Network.to_frame()``, a saved network's ``_units.tsv``), a mapping
        or explicit pairs such as ``[("layers.3.resid_post", 17)]``.
    strategy : {"zero", "mean", "noise", "scale", "resample"}, default="zero"
        ``"zero"``: set to 0; ``"mean"``: set to each unit's mean over the
        ``reference`` frames; ``"noise"``: add Gaussian noise with standard
        deviation ``sigma`` times each unit's SD in the ``reference``;
        ``"scale"``: multiply by ``factor``; ``"resample"``: replace, at every
        position, by the values of the same units in one frame drawn at random
        from the ``reference`` (e.g. another condition's frames, ``condition=``).
    reference : Recording, optional
        A recording of the same model holding the lesioned units; needed by
        ``"mean"``, ``"noise"`` and ``"resample"``.
    condition : str or list of str, optional
        Use only the reference frames of these trial types.
    reference_runs : list of int, optional
        Use only these runs of the reference.
    sigma : float, default=1.0
        Noise SD in units of each unit's reference SD (``"noise"``).
    factor : float, optional
        Multiplier (``"scale"``; required there).
    random_state : int or numpy Generator, optional
        Seeds the noise and the resampled frames (one generator per site,
        created when the lesion is entered, so the same seed and the same
        sequence of forward passes give the same values).
    label : str, optional
        Name in tables (default: the network's label, or ``"units"``).

    Raises
    ------
    ValueError
        For an unknown strategy, a strategy that needs a reference without
        one, a missing or bad ``factor`` or ``sigma``.
    DataError
        For an empty network or a network without units.
    TypeError
        For units of another type.
    """

    def __init__(self, units, strategy="zero", *, reference=None, condition=None,
                 reference_runs=None, sigma=1.0, factor=None, random_state=None, label=None):
        self.strategy = check_option("strategy", strategy, tuple(STRATEGIES))
        self.units = as_lesion_units(units, label)
        if strategy in _NEEDS_REFERENCE and reference is None:
            raise ValueError(
                f"strategy={strategy!r} needs a reference recording (reference=...): "
                f"{STRATEGIES[strategy]}. Record the model on a paradigm with the lesioned sites "
                "(llmfmri.record) and pass reference=llmfmri.load_recording(...), or use "
                "strategy='zero' or 'scale'."
            )
        if strategy not in _NEEDS_REFERENCE and (reference is not None or condition is not None):
            raise ValueError(
                f"strategy={strategy!r} reads no reference recording, but reference= or "
                "condition= was given; use strategy='mean', 'noise' or 'resample' with them."
            )
        if strategy == "scale":
            if factor is None:
                raise ValueError("strategy='scale' needs factor=..., e.g. factor=0.5 or 4.")
            factor = _check_real("factor", factor)
        elif factor is not None:
            raise ValueError(f"factor is used by strategy='scale' only, but strategy="
                             f"{strategy!r}.")
        self.sigma = _check_real("sigma", sigma, positive=True)
        self.factor = factor
        self.reference = reference
        self.condition = condition
        self.reference_runs = reference_runs
        self.random_state = random_state
        check_random_state(random_state)  # validate now, draw when entered

    @property
    def label(self):
        return self.units.label

    @property
    def n_units(self):
        return self.units.n_units

    def __repr__(self):
        extra = {"scale": f", factor={self.factor:g}", "noise": f", sigma={self.sigma:g}"}
        return (f"Lesion({self.label!r}, strategy={self.strategy!r}, n_units={self.n_units}"
                f"{extra.get(self.strategy, '')})")

    def describe(self):
        """The lesion as a dict (for tables and summaries)."""
        return {"label": self.label, "strategy": self.strategy, "n_units": self.n_units,
                "n_sites": len(self.units.sites),
                "factor": self.factor, "sigma": self.sigma if self.strategy == "noise" else None,
                "condition": self.condition,
                "reference": None if self.reference is None
                else str(getattr(self.reference, "path", self.reference))}

    # ------------------------------------------------------------- application
    def _edits(self, model):
        """``{site: fn}`` for :func:`llmfmri.intervene` (reads the reference; checks the model)."""
        from ..models import get_adapter

        adapter = get_adapter(model)
        model_id, weights = model_identity(model)
        self.units.check_model(adapter, f"the {adapter.family} model {model_id!r}")
        stats = None
        if self.strategy in _NEEDS_REFERENCE:
            check_reference_model(self.reference, model_id, weights)
            stats = reference_stats(self.reference, self.units, condition=self.condition,
                                    runs=self.reference_runs,
                                    keep_frames=self.strategy == "resample")
        rng = check_random_state(self.random_state)
        seeds = rng.integers(0, 2 ** 62, size=len(self.units.sites))
        edits, start = {}, 0
        for k, (site, idx) in enumerate(self.units.indices.items()):
            sl = slice(start, start + idx.size)
            start += idx.size
            params = {}
            if self.strategy == "mean":
                params["values"] = stats.mean[sl]
            elif self.strategy == "noise":
                params["sd"] = self.sigma * stats.std[sl]
            elif self.strategy == "resample":
                params["bank"] = stats.bank[:, sl]
            elif self.strategy == "scale":
                params["factor"] = self.factor
            edits[site] = _SiteEdit(self.strategy, idx, seed=int(seeds[k]), **params)
        return edits


class _SiteEdit:
    """``fn(h) -> h'`` editing only the chosen coordinates of one site, out of place.

    ``h`` is never modified: a copy is made, only ``[..., idx]`` of the copy is
    written, every other coordinate keeps its exact value.
    """

    def __init__(self, strategy, idx, *, seed, values=None, sd=None, bank=None, factor=None):
        self.strategy, self.seed = strategy, seed
        self.idx_np = np.asarray(idx, dtype=np.int64)
        self.values, self.sd, self.bank, self.factor = values, sd, bank, factor
        self._cache = {}
        self._gens = {}

    def _on(self, name, array, device, dtype=None):
        import torch

        key = (name, str(device), dtype)
        t = self._cache.get(key)
        if t is None:
            t = torch.as_tensor(array, device=device)
            if dtype is not None:
                t = t.to(dtype)
            self._cache[key] = t
        return t

    def _generator(self, device):
        import torch

        g = self._gens.get(str(device))
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            self._gens[str(device)] = g
        return g

    def __call__(self, h):
        import torch

        idx = self._on("idx", self.idx_np, h.device)
        out = h.clone()
        if self.strategy == "zero":
            out[..., idx] = 0
        elif self.strategy == "scale":
            out[..., idx] = h[..., idx] * self.factor
        elif self.strategy == "mean":
            out[..., idx] = self._on("values", self.values, h.device, h.dtype)
        elif self.strategy == "noise":
            wide = torch.promote_types(h.dtype, torch.float32)
            sd = self._on("sd", self.sd, h.device, wide)
            noise = torch.randn(tuple(h.shape[:-1]) + (self.idx_np.size,), dtype=wide,
                                device=h.device, generator=self._generator(h.device))
            out[..., idx] = (h[..., idx].to(wide) + noise * sd).to(h.dtype)
        else:  # resample
            bank = self._on("bank", self.bank, h.device, h.dtype)
            rows = torch.randint(0, bank.shape[0], tuple(h.shape[:-1]), device=h.device,
                                 generator=self._generator(h.device))
            out[..., idx] = bank[rows]
        return out


def _as_lesions(units, strategy, kwargs):
    if isinstance(units, Lesion):
        units = [units]
    if isinstance(units, (list, tuple)) and units and all(isinstance(u, Lesion) for u in units):
        changed = [k for k, v in kwargs.items() if v is not None] + (
            ["strategy"] if strategy != "zero" else [])
        if changed:
            raise ValueError(
                f"units is a list of Lesion objects, each with its own strategy; {changed} "
                "cannot be given as well. Set them in each Lesion(...)."
            )
        return list(units)
    if isinstance(units, (list, tuple)) and any(isinstance(u, Lesion) for u in units):
        raise TypeError("units mixes Lesion objects with other items; give Lesion objects only, "
                        "or units of one lesion.")
    sigma = kwargs.pop("sigma")
    return [Lesion(units, strategy, sigma=1.0 if sigma is None else sigma, **kwargs)]


class _LesionContext:
    """The context manager :func:`lesion` returns."""

    def __init__(self, model, lesions, verbose):
        from ..models import get_adapter

        self.model, self.lesions, self.verbose = model, lesions, verbose
        self._stack = None
        adapter = get_adapter(model)  # units that do not fit the model: refused now
        name = f"the {adapter.family} model {model_identity(model)[0]!r}"
        for les in lesions:
            les.units.check_model(adapter, name)

    def __repr__(self):
        state = "active" if self._stack is not None else "inactive"
        return f"<lesion of {self.n_units} units ({state}): {self.lesions}>"

    @property
    def n_units(self):
        return sum(les.n_units for les in self.lesions)

    def __enter__(self):
        from ..recording import intervene

        if self._stack is not None:
            raise RuntimeError("This lesion is already active; nest a new lesion(...) instead.")
        with use_log_level(self.verbose):
            # every check and every reference read happens before the first hook
            edits = [les._edits(self.model) for les in self.lesions]
            stack = contextlib.ExitStack()
            try:
                for les, e in zip(self.lesions, edits):
                    stack.enter_context(intervene(self.model, e))
                    logger.info("lesion %r: %s of %d units in %d sites", les.label,
                                les.strategy, les.n_units, len(e))
            except BaseException:
                stack.close()
                raise
        self._stack = stack
        return self

    def __exit__(self, *exc):
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()  # removes every hook, also after an exception in the block
        return False


def lesion(model, units, strategy="zero", *, reference=None, condition=None,
           reference_runs=None, sigma=None, factor=None, random_state=None, label=None,
           verbose=None):
    """Lesion units of a model while a block runs (a context manager).

    The chosen coordinates of the sites' outputs are edited by forward hooks
    (:func:`llmfmri.intervene`) at every forward pass -- every prompt position
    and every generated token, KV cache on -- for every architecture family
    the adapters support. Nothing else changes: the hooks copy each site's
    output and write only the chosen coordinates, and they are removed when
    the block exits, also after an exception inside it, so the model is
    bit-identical afterwards. Lesions compose: nest ``with lesion(...)``
    blocks, or give a list of :class:`Lesion` objects (applied in order).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    units : Network, DataFrame, mapping, list of (site, index), Lesion or list of Lesion
        The units (see :class:`Lesion`), or ready-made lesions.
    strategy : {"zero", "mean", "noise", "scale", "resample"}, default="zero"
        See :class:`Lesion` and :data:`STRATEGIES`.
    reference, condition, reference_runs, sigma, factor, random_state, label
        See :class:`Lesion`.
    verbose : None, bool or int, optional
        Log what is lesioned (INFO).

    Returns
    -------
    context manager
        ``with lesion(...) as les:`` gives an object with ``lesions`` (the
        :class:`Lesion` objects) and ``n_units``.

    Raises
    ------
    ValueError
        Bad strategy or parameters; a strategy that needs a reference without one.
    DataError
        An empty network; units or a reference recording from another model
        (checked when the block is entered, before any hook is added).
    SiteError
        Sites the model does not have.

    Examples
    --------
    >>> import llmfmri as lf
    >>> from llmfmri.models import tiny_model
    >>> from llmfmri.lesions import lesion
    >>> model = tiny_model("gpt2")
    >>> with lesion(model, [("layers.0.resid_post", 3), ("layers.1.resid_post", 5)]) as les:
    ...     les.n_units
    2
    """
    kwargs = dict(reference=reference, condition=condition, reference_runs=reference_runs,
                  sigma=sigma, factor=factor, random_state=random_state, label=label)
    lesions = _as_lesions(units, strategy, kwargs)
    if not lesions:
        raise DataError("No lesion given: units is an empty list.")
    return _LesionContext(model, lesions, verbose)
