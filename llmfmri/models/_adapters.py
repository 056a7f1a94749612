"""Architecture adapters: the site grammar mapped onto each family's modules.

A small table per family (as TransformerLens and pyvene do) says where the
blocks, attention, MLP and MLP-neuron modules live. Sites:

* ``embed`` -- the input of the first block (token + position embeddings),
  equal to Hugging Face ``hidden_states[0]``.
* ``layers.{i}.resid_post`` -- the output of block ``i`` (the residual stream),
  equal to ``hidden_states[i + 1]`` except for the last block, whose
  ``hidden_states`` entry is taken after the final norm.
* ``layers.{i}.attn_out`` -- the output of the attention module (after its
  output projection), before it is added to the residual stream.
* ``layers.{i}.mlp_out`` -- the output of the MLP (after its output projection).
* ``layers.{i}.mlp_act`` -- the MLP neurons after the nonlinearity: the input of
  the MLP output projection (for gated MLPs, ``act(gate) * up``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import UnknownArchitectureError
from .._utils import did_you_mean
from ..units import COMPONENTS, SiteError, format_site, parse_site

__all__ = ["ArchitectureAdapter", "get_adapter", "list_sites", "FAMILIES", "UnknownArchitectureError"]


@dataclass(frozen=True)
class _Family:
    name: str
    model_types: tuple  # config.model_type values
    layers: str  # attribute path of the ModuleList of blocks, from the CausalLM
    attn: str  # within a block
    mlp_out: str  # module whose output is the MLP output (within a block)
    mlp_proj_out: str  # module whose *input* is the MLP activation (within a block)
    weights: dict  # name -> (path within block, transpose?, fused qkv split index or None)
    n_layers_attr: str
    d_model_attr: str
    d_mlp_attr: str
    flat_mlp: bool = False  # the MLP sees (batch * positions, width) tensors (OPT)


FAMILIES = {
    "gpt2": _Family(
        name="gpt2", model_types=("gpt2",), layers="transformer.h", attn="attn", mlp_out="mlp",
        mlp_proj_out="mlp.c_proj",
        weights={"qkv": ("attn.c_attn", True), "o": ("attn.c_proj", True),
                 "mlp_in": ("mlp.c_fc", True), "mlp_out": ("mlp.c_proj", True)},
        n_layers_attr="n_layer", d_model_attr="n_embd", d_mlp_attr="n_inner",
    ),
    "opt": _Family(
        name="opt", model_types=("opt",), layers="model.decoder.layers", attn="self_attn",
        mlp_out="fc2", mlp_proj_out="fc2",
        weights={"q": ("self_attn.q_proj", False), "k": ("self_attn.k_proj", False),
                 "v": ("self_attn.v_proj", False), "o": ("self_attn.out_proj", False),
                 "mlp_in": ("fc1", False), "mlp_out": ("fc2", False)},
        n_layers_attr="num_hidden_layers", d_model_attr="hidden_size", d_mlp_attr="ffn_dim",
        flat_mlp=True,
    ),
    "gpt_neox": _Family(
        name="gpt_neox", model_types=("gpt_neox",), layers="gpt_neox.layers", attn="attention",
        mlp_out="mlp", mlp_proj_out="mlp.dense_4h_to_h",
        weights={"qkv": ("attention.query_key_value", False), "o": ("attention.dense", False),
                 "mlp_in": ("mlp.dense_h_to_4h", False), "mlp_out": ("mlp.dense_4h_to_h", False)},
        n_layers_attr="num_hidden_layers", d_model_attr="hidden_size", d_mlp_attr="intermediate_size",
    ),
    "llama": _Family(
        name="llama", model_types=("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "olmo"),
        layers="model.layers", attn="self_attn", mlp_out="mlp", mlp_proj_out="mlp.down_proj",
        weights={"q": ("self_attn.q_proj", False), "k": ("self_attn.k_proj", False),
                 "v": ("self_attn.v_proj", False), "o": ("self_attn.o_proj", False),
                 "mlp_gate": ("mlp.gate_proj", False), "mlp_in": ("mlp.up_proj", False),
                 "mlp_out": ("mlp.down_proj", False)},
        n_layers_attr="num_hidden_layers", d_model_attr="hidden_size", d_mlp_attr="intermediate_size",
    ),
}

_MODEL_TYPE_TO_FAMILY = {mt: fam for fam in FAMILIES.values() for mt in fam.model_types}


def _get_path(root, path):
    obj = root
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


class ArchitectureAdapter:
    """Maps the site grammar onto one model's modules.

    Obtain one with :func:`get_adapter`.

    Attributes
    ----------
    family : str
        ``"gpt2"``, ``"opt"``, ``"gpt_neox"`` or ``"llama"``.
    n_layers, d_model, d_mlp : int
    """

    def __init__(self, model, family):
        self.model = model
        self._fam = family
        self.family = family.name
        self.flat_mlp = family.flat_mlp
        cfg = model.config
        self.n_layers = int(getattr(cfg, family.n_layers_attr))
        self.d_model = int(getattr(cfg, family.d_model_attr))
        d_mlp = getattr(cfg, family.d_mlp_attr, None)
        self.d_mlp = int(d_mlp) if d_mlp else 4 * self.d_model  # GPT-2's n_inner=None means 4*d

    def __repr__(self):
        return (f"ArchitectureAdapter(family={self.family!r}, n_layers={self.n_layers}, "
                f"d_model={self.d_model}, d_mlp={self.d_mlp})")

    # ------------------------------------------------------------------ sites
    def sites(self, components=None):
        """All site names of this model, ``embed`` first, then block by block."""
        comps = COMPONENTS if components is None else components
        return ["embed"] + [format_site(i, c) for i in range(self.n_layers) for c in comps]

    def expand_sites(self, sites):
        """Expand a site spec into a list of site names.

        ``sites`` may be a component (``"resid_post"`` -> every layer), a site
        name, ``"all"``, or a list mixing these.

        Examples
        --------
        >>> adapter.expand_sites("resid_post")[:2]  # doctest: +SKIP
        ['layers.0.resid_post', 'layers.1.resid_post']
        """
        if isinstance(sites, str):
            sites = [sites]
        out = []
        for spec in sites:
            if spec == "all":
                out.extend(self.sites())
            elif spec in COMPONENTS:
                out.extend(format_site(i, spec) for i in range(self.n_layers))
            else:
                self.check_site(spec)
                out.append(spec)
        seen = set()
        return [s for s in out if not (s in seen or seen.add(s))]

    def check_site(self, site):
        """Raise :class:`SiteError` unless ``site`` exists in this model."""
        try:
            layer, component = parse_site(site)
        except SiteError as exc:
            raise SiteError(
                f"{exc} This {self.family} model has sites 'embed' and "
                f"'layers.{{0..{self.n_layers - 1}}}.{{{','.join(COMPONENTS)}}}', or give a "
                f"component name ({', '.join(COMPONENTS)}) for every layer."
                + did_you_mean(site, list(COMPONENTS) + ["embed", "all"])
            ) from None
        if component != "embed" and not 0 <= layer < self.n_layers:
            raise SiteError(
                f"Site {site!r} names layer {layer}, but this {self.family} model has layers "
                f"0..{self.n_layers - 1}."
            )
        return layer, component

    def site_size(self, site):
        """Width of a site's output."""
        _, component = self.check_site(site)
        return self.d_mlp if component == "mlp_act" else self.d_model

    def block(self, layer):
        """The ``nn.Module`` of block ``layer``."""
        return _get_path(self.model, self._fam.layers)[layer]

    def hook_point(self, site):
        """Where a site lives: ``(module, kind)`` with kind ``"output"`` or ``"input"``.

        ``"output"``: the site is the module's output (a forward hook);
        ``"input"``: the site is the module's first input (a forward pre-hook).
        """
        layer, component = self.check_site(site)
        if component == "embed":
            return self.block(0), "input"
        block = self.block(layer)
        if component == "resid_post":
            return block, "output"
        if component == "attn_out":
            return _get_path(block, self._fam.attn), "output"
        if component == "mlp_out":
            return _get_path(block, self._fam.mlp_out), "output"
        return _get_path(block, self._fam.mlp_proj_out), "input"

    # ---------------------------------------------------------------- weights
    def weight_matrices(self, layer):
        """Weight matrices of block ``layer`` in ``(out_features, in_features)`` orientation.

        Returns
        -------
        dict of str to torch.Tensor
            Keys among ``q, k, v, o, mlp_in, mlp_gate, mlp_out``. GPT-2's Conv1D
            weights are transposed and fused QKV weights are split; tensors are
            views of the model's parameters where possible (no copy).
        """
        if not 0 <= int(layer) < self.n_layers:
            raise ValueError(f"layer must be in 0..{self.n_layers - 1}, but got {layer}.")
        block = self.block(int(layer))
        out = {}
        for name, (path, transpose) in self._fam.weights.items():
            w = _get_path(block, path).weight
            if transpose:
                w = w.T
            if name == "qkv":
                if self.family == "gpt_neox":
                    # NeoX interleaves per head: (n_heads, 3, head_dim) along the output axis.
                    n_heads = int(self.model.config.num_attention_heads)
                    wv = w.view(n_heads, 3, -1, w.shape[-1])
                    out["q"], out["k"], out["v"] = (
                        wv[:, j].reshape(-1, w.shape[-1]) for j in range(3))
                else:
                    out["q"], out["k"], out["v"] = w.split(self.d_model, dim=0)
            else:
                out[name] = w
        return out


def get_adapter(model):
    """Return the :class:`ArchitectureAdapter` of a Hugging Face causal LM.

    Raises
    ------
    UnknownArchitectureError
        If the model's ``config.model_type`` has no adapter; the message lists the
        supported types and the module names found, so modules can be named directly.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    fam = _MODEL_TYPE_TO_FAMILY.get(model_type)
    if fam is None:
        found = [n for n, _ in model.named_modules()][:12] if hasattr(model, "named_modules") else []
        raise UnknownArchitectureError(
            f"No architecture adapter for model_type {model_type!r}. Supported model types: "
            f"{', '.join(sorted(_MODEL_TYPE_TO_FAMILY))}." + did_you_mean(model_type or "", _MODEL_TYPE_TO_FAMILY)
            + f" The model's first modules are {found}; add a family to "
            "llmfmri.models._adapters.FAMILIES naming its blocks, attention and MLP modules."
        )
    return ArchitectureAdapter(model, fam)


def list_sites(model, components=None):
    """All site names of ``model`` (see :class:`ArchitectureAdapter`)."""
    return get_adapter(model).sites(components)
