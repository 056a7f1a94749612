"""Forward hooks on sites: capture and in-place edits, always removed (try/finally)."""

from __future__ import annotations

import contextlib

from ..models import get_adapter

__all__ = ["site_hooks", "intervene"]


def _make_hook(kind, fn):
    """Wrap ``fn(tensor) -> tensor | None`` as a forward hook or forward pre-hook."""
    if kind == "output":
        def hook(module, args, output):
            if isinstance(output, tuple):
                new = fn(output[0])
                return None if new is None else (new,) + tuple(output[1:])
            return fn(output)
        return hook

    def pre_hook(module, args, kwargs):
        if args:
            new = fn(args[0])
            return None if new is None else ((new,) + tuple(args[1:]), kwargs)
        new = fn(kwargs["hidden_states"])
        if new is None:
            return None
        kwargs = dict(kwargs)
        kwargs["hidden_states"] = new
        return args, kwargs
    return pre_hook


@contextlib.contextmanager
def site_hooks(model, callbacks):
    """Register ``callbacks`` (site -> fn(tensor) -> tensor | None) for the duration of a block.

    A callback receives the site's activation, of shape ``(batch, positions, width)``,
    at every forward pass (with the KV cache on, ``positions`` is 1 after the first
    step). Returning a tensor replaces the activation downstream; returning ``None``
    leaves it unchanged. Hooks are removed on exit, also after an error.
    """
    adapter = get_adapter(model)
    handles = []
    try:
        for site, fn in callbacks.items():
            module, kind = adapter.hook_point(site)
            if adapter.flat_mlp and site.endswith(("mlp_act", "mlp_out")):
                fn = _unflatten(fn, adapter, site, handles)
            hook = _make_hook(kind, fn)
            if kind == "output":
                handles.append(module.register_forward_hook(hook))
            else:
                handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        yield adapter
    finally:
        for h in handles:
            h.remove()


def _unflatten(fn, adapter, site, handles):
    """Give ``fn`` (batch, positions, width) where the module sees (batch * positions, width)."""
    from ..units import parse_site

    block = adapter.block(parse_site(site)[0])
    shape = {}

    def remember(module, args, kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        shape["bs"] = tuple(h.shape[:2])

    handles.append(block.register_forward_pre_hook(remember, with_kwargs=True))

    def wrapped(h):
        if h.dim() != 2:
            return fn(h)
        new = fn(h.view(*shape["bs"], h.shape[-1]))
        return None if new is None else new.reshape(h.shape)
    return wrapped


def intervene(model, edits):
    """Edit site activations while the block runs (a context manager).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    edits : dict of str to callable
        Site (``"layers.3.resid_post"``, or a component such as ``"resid_post"``
        for every layer) -> ``fn(activation) -> activation``. The function sees a
        tensor of shape ``(batch, positions, width)`` at every forward pass --
        every prompt position and every generated token, KV cache on -- and
        returns the edited tensor (or edits in place and returns ``None``).
        :func:`llmfmri.record` inside the block records the edited activations;
        lesions are built on this.

    Examples
    --------
    >>> from llmfmri.models import tiny_model
    >>> from llmfmri.recording import intervene
    >>> model = tiny_model("gpt2")
    >>> def zero_unit_3(h):
    ...     h = h.clone(); h[..., 3] = 0; return h
    >>> with intervene(model, {"layers.0.resid_post": zero_unit_3}):
    ...     pass  # run or record the model here
    """
    adapter = get_adapter(model)
    expanded = {}
    for spec, fn in edits.items():
        if not callable(fn):
            raise TypeError(
                f"The edit for site {spec!r} must be callable, but got {type(fn).__name__}.")
        for site in adapter.expand_sites(spec):
            expanded[site] = fn
    return site_hooks(model, expanded)
