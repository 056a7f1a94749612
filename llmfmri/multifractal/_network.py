"""Neuron interaction networks (NINs) sampled from a transformer's weights.

Nodes are neurons; an edge joins neuron ``i`` of one layer of neurons to neuron
``j`` of the next, with weight ``W[j, i]`` (weights in ``(out_features,
in_features)`` orientation) and distance ``1/|W[j, i]|``. Per block, the layers of
neurons follow the NeuroMFA reference code (``network_extraction.py``)::

    resid (block input, d) --q,k,v--> q | k | v outputs --(weight 1)--> attention-output
    input (z) --o--> attention output (d) --mlp_in [and mlp_gate]--> MLP neurons (d_mlp)
    --mlp_out--> resid (block output = next block's input)

``n_neurons`` neurons are sampled per layer (``2 * n_neurons`` MLP neurons), the
q, k and v slices and z sharing one set of indices. The q/k/v -> z edges carry
the reference's structural weight 1 (v identity, q and k to every z), which the
distance filter ``1 < d`` always excludes. For gated MLPs (LLaMA) both the gate
and the up projection join a residual neuron to an MLP neuron: two parallel edges.

No torch import at module level: weights may be numpy arrays.
"""

from __future__ import annotations


from dataclasses import dataclass, field

import numpy as np

from ..exceptions import MultifractalWarning
from .._utils import logger, warn
from ._spectrum import MultifractalError

__all__ = ["NeuronNetwork", "neuron_network", "neuron_networks", "EDGE_KINDS", "NODE_GROUPS",
           "MultifractalWarning"]

#: Edge kinds: the weight matrix an edge comes from ("attn_mix": structural weight 1).
EDGE_KINDS = ("q", "k", "v", "attn_mix", "o", "mlp_in", "mlp_gate", "mlp_out")
#: Node groups (layers of neurons) within a block.
NODE_GROUPS = ("resid", "q", "k", "v", "attn_z", "attn_out", "mlp")
_REQUIRED = ("q", "k", "v", "o", "mlp_in", "mlp_out")


@dataclass(frozen=True, repr=False)
class NeuronNetwork:
    """A sampled neuron interaction network.

    Attributes
    ----------
    source, target : ndarray of shape (n_edges,)
        Node ids of each directed edge (from the input neuron to the output neuron).
    weight : ndarray of shape (n_edges,)
        The weight ``W[out, in]`` of each edge (float64).
    edge_kind : ndarray of shape (n_edges,)
        Index into :data:`EDGE_KINDS` of each edge.
    edge_block : ndarray of shape (n_edges,)
        Transformer block of each edge.
    node_block, node_group, node_index : ndarray of shape (n_nodes,)
        Block, index into :data:`NODE_GROUPS`, and the neuron's index within its
        weight dimension. The output of block b is the ``resid`` group of block b + 1.
    family : str or None
        Architecture family the weights came from.
    seed : int or None
        Seed of the neuron sample.
    n_neurons, n_mlp_neurons : int
        Neurons sampled per layer and per MLP layer.
    """

    source: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    edge_kind: np.ndarray
    edge_block: np.ndarray
    node_block: np.ndarray
    node_group: np.ndarray
    node_index: np.ndarray
    family: str | None = None
    seed: int | None = None
    n_neurons: int = 0
    n_mlp_neurons: int = 0
    info: dict = field(default_factory=dict)

    @property
    def n_nodes(self):
        return int(self.node_block.size)

    @property
    def n_edges(self):
        return int(self.source.size)

    @property
    def n_blocks(self):
        return int(self.edge_block.max()) + 1 if self.n_edges else 0

    def __repr__(self):
        return (f"NeuronNetwork(family={self.family!r}, n_blocks={self.n_blocks}, "
                f"n_nodes={self.n_nodes}, n_edges={self.n_edges}, n_neurons={self.n_neurons}, "
                f"seed={self.seed})")

    @property
    def distance(self):
        """Edge distances ``1/|w|`` (inf for a zero weight), shape (n_edges,)."""
        with np.errstate(divide="ignore"):
            return 1.0 / np.abs(self.weight)

    # the protocol multifractal_spectrum reads
    def edge_distances(self):
        """``(source, distance, n_nodes)``: each edge's source node and distance."""
        return self.source, self.distance, self.n_nodes

    def edge_targets(self):
        return self.target

    def check_edges_in_range(self, min_distance=1.0, max_distance=150.0, *, action="raise"):
        """Raise (or warn) if a block's weight matrix has no sampled edge in range.

        ``action`` is ``"raise"`` (:class:`MultifractalError`) or ``"warn"``
        (:class:`MultifractalWarning`). Structural ``attn_mix`` edges are ignored.
        Returns the list of ``(block, kind)`` pairs without an edge in range.
        """
        d = self.distance
        inr = (d > min_distance) & (d <= max_distance)
        mix = EDGE_KINDS.index("attn_mix")
        real = self.edge_kind != mix
        key = self.edge_block.astype(np.int64) * len(EDGE_KINDS) + self.edge_kind
        present = np.unique(key[real])
        hit = np.unique(key[real & inr])
        empty = np.setdiff1d(present, hit)
        if empty.size == 0:
            return []
        pairs = [(int(k // len(EDGE_KINDS)), EDGE_KINDS[int(k % len(EDGE_KINDS))]) for k in empty]
        details = []
        for b, kind in pairs[:6]:
            sel = real & (self.edge_block == b) & (self.edge_kind == EDGE_KINDS.index(kind))
            w = np.abs(self.weight[sel])
            details.append(f"block {b} {kind!r} (|w| in [{w.min():.3g}, {w.max():.3g}])")
        more = f" and {len(pairs) - 6} more" if len(pairs) > 6 else ""
        msg = (
            f"{len(pairs)} weight matrix sample(s) have no edge with distance 1/|w| in "
            f"({min_distance}, {max_distance}], i.e. |w| in [{1 / max_distance:.3g}, "
            f"{1 / min_distance:.3g}): " + ", ".join(details) + more + ". Zero-initialised "
            "or rescaled weights do this. Set min_distance/max_distance to the weight scale "
            "(see NeuronNetwork.distance), or pass empty_layers='warn' to analyse the rest."
        )
        if action == "raise":
            raise MultifractalError(msg)
        warn(msg, MultifractalWarning)
        return pairs

    def to_frame(self):
        """Edges as a DataFrame: source, target, weight, distance, kind, block."""
        import pandas as pd

        return pd.DataFrame({
            "source": self.source, "target": self.target, "weight": self.weight,
            "distance": self.distance, "kind": np.asarray(EDGE_KINDS)[self.edge_kind],
            "block": self.edge_block,
        })

    def nodes_frame(self):
        """Nodes as a DataFrame indexed by node id: block, group, index."""
        import pandas as pd

        return pd.DataFrame({"block": self.node_block,
                             "group": np.asarray(NODE_GROUPS)[self.node_group],
                             "index": self.node_index}).rename_axis("node")

    def to_sparse(self, min_distance=1.0, max_distance=150.0):
        """Square scipy sparse matrix of edge distances in range (row = source).

        Parallel edges keep the shortest distance.
        """
        import scipy.sparse as sp

        d = self.distance
        keep = (d > min_distance) & (d <= max_distance)
        s, t, d = self.source[keep], self.target[keep], d[keep]
        order = np.lexsort((d, t, s))
        s, t, d = s[order], t[order], d[order]
        first = np.ones(s.size, dtype=bool)
        first[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1])
        return sp.csr_array((d[first], (s[first], t[first])), shape=(self.n_nodes, self.n_nodes))

    def to_networkx(self, min_distance=1.0, max_distance=150.0):
        """A ``networkx.MultiDiGraph`` of the edges in range (attributes weight, distance, kind)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        groups = np.asarray(NODE_GROUPS)
        g.add_nodes_from((int(i), {"block": int(b), "group": str(groups[gr]), "index": int(x)})
                         for i, (b, gr, x) in enumerate(zip(self.node_block, self.node_group,
                                                            self.node_index)))
        d = self.distance
        keep = np.flatnonzero((d > min_distance) & (d <= max_distance))
        kinds = np.asarray(EDGE_KINDS)
        g.add_edges_from((int(self.source[e]), int(self.target[e]),
                          {"weight": float(self.weight[e]), "distance": float(d[e]),
                           "kind": str(kinds[self.edge_kind[e]])}) for e in keep)
        return g


# ------------------------------------------------------------------------- weights
def _shape(w):
    return tuple(int(s) for s in w.shape)


def _layer_weights(model):
    """``(weights, family)``: a list of per-block dicts of (out, in) matrices."""
    if isinstance(model, (list, tuple)):
        if not model or not all(hasattr(m, "keys") for m in model):
            raise MultifractalError(
                "Weights given as a sequence must be a non-empty list of dicts, one per block, "
                f"mapping {list(_REQUIRED)} (and optionally 'mlp_gate') to (out_features, "
                "in_features) matrices."
            )
        return [dict(m) for m in model], None
    if hasattr(model, "weight_matrices") and hasattr(model, "n_layers"):
        adapter = model
    else:
        from ..models import get_adapter

        adapter = get_adapter(model)
    return [adapter.weight_matrices(i) for i in range(adapter.n_layers)], adapter.family


def _check_weights(layers, n_neurons, n_mlp):
    d = None
    for b, w in enumerate(layers):
        missing = [k for k in _REQUIRED if k not in w]
        if missing:
            raise MultifractalError(
                f"Block {b} lacks weight matrices {missing}; each block needs {list(_REQUIRED)} "
                f"(optionally 'mlp_gate'), but has {sorted(w)}."
            )
        shapes = {k: _shape(v) for k, v in w.items()}
        if any(len(s) != 2 for s in shapes.values()):
            raise MultifractalError(f"Block {b}: weight matrices must be 2-D, but got {shapes}.")
        d_b = shapes["q"][1]
        d = d_b if d is None else d
        problems = []
        for k in ("q", "k", "v", "mlp_in") + (("mlp_gate",) if "mlp_gate" in w else ()):
            if shapes[k][1] != d:
                problems.append(f"{k} has in_features {shapes[k][1]}, expected d_model={d}")
        if shapes["k"] != shapes["v"]:
            problems.append(f"k {shapes['k']} and v {shapes['v']} differ in shape")
        if shapes["o"] != (d, shapes["q"][0]):
            problems.append(f"o has shape {shapes['o']}, expected (d_model, q out_features) = "
                            f"{(d, shapes['q'][0])}")
        if "mlp_gate" in w and shapes["mlp_gate"] != shapes["mlp_in"]:
            problems.append(f"mlp_gate {shapes['mlp_gate']} differs from mlp_in {shapes['mlp_in']}")
        if shapes["mlp_out"] != (d, shapes["mlp_in"][0]):
            problems.append(f"mlp_out has shape {shapes['mlp_out']}, expected (d_model, d_mlp) = "
                            f"{(d, shapes['mlp_in'][0])}")
        if problems:
            raise MultifractalError(
                f"Block {b}: inconsistent weight shapes ({'; '.join(problems)}). Weights must be "
                f"in (out_features, in_features) orientation; got {shapes}."
            )
        small = {"d_model": d, "q/o heads dim": shapes["q"][0], "k/v dim": shapes["k"][0]}
        for name, size in small.items():
            if n_neurons > size:
                raise MultifractalError(
                    f"n_neurons={n_neurons} is larger than the {name} ({size}) of block {b}: "
                    f"too few neurons to sample. Use n_neurons <= {min(small.values())}."
                )
        if n_mlp > shapes["mlp_in"][0]:
            raise MultifractalError(
                f"n_mlp_neurons={n_mlp} is larger than d_mlp ({shapes['mlp_in'][0]}) of block {b}. "
                f"Use n_mlp_neurons <= {shapes['mlp_in'][0]}."
            )
    return d


def _gather(w, rows, cols):
    """``w[rows][:, cols]`` as float64 numpy, for numpy arrays and torch tensors."""
    if hasattr(w, "detach"):
        import torch

        sub = w.detach()[torch.as_tensor(rows)][:, torch.as_tensor(cols)]
        return sub.to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(w, dtype=np.float64)[np.ix_(rows, cols)]


def _sample(layers, d, n_neurons, n_mlp, seed):
    """Sampled neuron indices per block, in the reference code's draw order."""
    rs = np.random.RandomState(seed)  # legacy generator: the reference's np.random.seed(index)
    samples = []
    for b, w in enumerate(layers):
        s = {"resid": rs.choice(d, n_neurons, replace=False)}  # nums1
        d_q, d_kv = _shape(w["q"])[0], _shape(w["k"])[0]
        s["z"] = rs.choice(d_q, n_neurons, replace=False)  # nums2 (q/k/v slices) == nums3
        s["attn_out"] = rs.choice(d, n_neurons, replace=False)  # nums4
        s["mlp"] = rs.choice(_shape(w["mlp_in"])[0], n_mlp, replace=False)  # nums5
        if b == len(layers) - 1:
            s["final"] = rs.choice(d, n_neurons, replace=False)  # nums6
        # grouped-query attention: k/v are narrower than q; sample them separately
        s["kv"] = s["z"] if d_kv == d_q else rs.choice(d_kv, n_neurons, replace=False)
        samples.append(s)
    return samples


def _build(layers, d, family, n_neurons, n_mlp, seed):
    samples = _sample(layers, d, n_neurons, n_mlp, seed)
    node_block, node_group, node_index = [], [], []
    n_next = [0]

    def add_nodes(block, group, idx):
        ids = np.arange(n_next[0], n_next[0] + len(idx))
        n_next[0] += len(idx)
        node_block.append(np.full(len(idx), block, np.int32))
        node_group.append(np.full(len(idx), NODE_GROUPS.index(group), np.int8))
        node_index.append(np.asarray(idx, np.int64))
        return ids

    src, tgt, wts, kinds, blocks = [], [], [], [], []

    def add_edges(block, kind, in_ids, out_ids, weights):
        # weights: (len(out_ids), len(in_ids)); edge in -> out
        src.append(np.tile(in_ids, len(out_ids)))
        tgt.append(np.repeat(out_ids, len(in_ids)))
        wts.append(np.asarray(weights, np.float64).ravel())
        kinds.append(np.full(len(in_ids) * len(out_ids), EDGE_KINDS.index(kind), np.int8))
        blocks.append(np.full(len(in_ids) * len(out_ids), block, np.int32))

    resid_ids = add_nodes(0, "resid", samples[0]["resid"])
    for b, (w, s) in enumerate(zip(layers, samples)):
        q_ids = add_nodes(b, "q", s["z"])
        k_ids = add_nodes(b, "k", s["kv"])
        v_ids = add_nodes(b, "v", s["kv"])
        for kind, ids, rows in (("q", q_ids, s["z"]), ("k", k_ids, s["kv"]),
                                ("v", v_ids, s["kv"])):
            add_edges(b, kind, resid_ids, ids, _gather(w[kind], rows, s["resid"]))
        z_ids = add_nodes(b, "attn_z", s["z"])
        ones = np.ones((n_neurons, n_neurons))
        add_edges(b, "attn_mix", q_ids, z_ids, ones)
        add_edges(b, "attn_mix", k_ids, z_ids, ones)
        eye_src, eye_tgt = v_ids, z_ids  # v_i -> z_i (identity), weight 1
        src.append(eye_src)
        tgt.append(eye_tgt)
        wts.append(np.ones(n_neurons))
        kinds.append(np.full(n_neurons, EDGE_KINDS.index("attn_mix"), np.int8))
        blocks.append(np.full(n_neurons, b, np.int32))
        ao_ids = add_nodes(b, "attn_out", s["attn_out"])
        add_edges(b, "o", z_ids, ao_ids, _gather(w["o"], s["attn_out"], s["z"]))
        mlp_ids = add_nodes(b, "mlp", s["mlp"])
        add_edges(b, "mlp_in", ao_ids, mlp_ids, _gather(w["mlp_in"], s["mlp"], s["attn_out"]))
        if "mlp_gate" in w:
            add_edges(b, "mlp_gate", ao_ids, mlp_ids,
                      _gather(w["mlp_gate"], s["mlp"], s["attn_out"]))
        nxt = samples[b + 1]["resid"] if b + 1 < len(layers) else s["final"]
        resid_ids = add_nodes(b + 1, "resid", nxt)
        add_edges(b, "mlp_out", mlp_ids, resid_ids, _gather(w["mlp_out"], nxt, s["mlp"]))

    net = NeuronNetwork(
        source=np.concatenate(src).astype(np.int64), target=np.concatenate(tgt).astype(np.int64),
        weight=np.concatenate(wts), edge_kind=np.concatenate(kinds),
        edge_block=np.concatenate(blocks), node_block=np.concatenate(node_block),
        node_group=np.concatenate(node_group), node_index=np.concatenate(node_index),
        family=family, seed=None if seed is None else int(seed), n_neurons=int(n_neurons),
        n_mlp_neurons=int(n_mlp), info={"d_model": int(d), "n_blocks": len(layers)},
    )
    real = net.edge_kind != EDGE_KINDS.index("attn_mix")
    if not np.any(net.weight[real] != 0):
        raise MultifractalError(
            "All sampled weights are zero: the network has no edges (distance 1/|w| is infinite "
            "everywhere). Are the weights loaded (not a meta/empty initialisation)?"
        )
    if not np.all(np.isfinite(net.weight)):
        raise MultifractalError(
            f"The sampled weights contain {int((~np.isfinite(net.weight)).sum())} NaN or inf "
            "values; check the checkpoint."
        )
    return net


def _check_counts(n_neurons, n_mlp_neurons):
    if isinstance(n_neurons, bool) or int(n_neurons) != n_neurons or n_neurons < 1:
        raise MultifractalError(f"n_neurons must be a positive integer, but got {n_neurons!r}.")
    n_mlp = 2 * int(n_neurons) if n_mlp_neurons is None else n_mlp_neurons
    if isinstance(n_mlp, bool) or int(n_mlp) != n_mlp or n_mlp < 1:
        raise MultifractalError(
            f"n_mlp_neurons must be a positive integer or None, but got {n_mlp_neurons!r}.")
    return int(n_neurons), int(n_mlp)


def neuron_networks(model, *, n_neurons=32, n_mlp_neurons=None, seeds=range(10)):
    """Several sampled neuron interaction networks of one model (weights read once).

    Parameters
    ----------
    model : transformers.PreTrainedModel, ArchitectureAdapter or list of dict
        A GPT-2, OPT, GPT-NeoX or LLaMA-family model (read through
        :func:`llmfmri.models.get_adapter`), or the weights directly: one dict per
        block with keys ``q, k, v, o, mlp_in, mlp_out`` (and ``mlp_gate`` for gated
        MLPs) mapping to numpy arrays or torch tensors of shape ``(out_features,
        in_features)``.
    n_neurons : int
        Neurons sampled per layer (the refactored reference: 32; the original: 64).
    n_mlp_neurons : int, optional
        Neurons sampled in each MLP layer; default ``2 * n_neurons`` as published.
    seeds : iterable of int
        One network per seed (published: 10 samples, seeds 0..9). The same seed
        samples the same neurons in every checkpoint of a model.

    Returns
    -------
    list of NeuronNetwork
    """
    n_neurons, n_mlp = _check_counts(n_neurons, n_mlp_neurons)
    layers, family = _layer_weights(model)
    d = _check_weights(layers, n_neurons, n_mlp)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise MultifractalError("seeds must name at least one seed, but is empty.")
    nets = [_build(layers, d, family, n_neurons, n_mlp, s) for s in seeds]
    logger.debug("Built %d neuron networks (%d nodes, %d edges each)", len(nets),
                 nets[0].n_nodes, nets[0].n_edges)
    return nets


def neuron_network(model, *, n_neurons=32, n_mlp_neurons=None, random_state=0):
    """Sample one neuron interaction network (NIN) from a model's weights.

    Parameters
    ----------
    model : transformers.PreTrainedModel, ArchitectureAdapter or list of dict
        See :func:`neuron_networks`.
    n_neurons : int
        Neurons sampled per layer of neurons (published: 32, or 64 originally).
    n_mlp_neurons : int, optional
        Neurons sampled per MLP layer; default ``2 * n_neurons``.
    random_state : int
        Seed of the sample (published: 0..9). Draws follow the reference code's
        order with numpy's legacy ``RandomState``, so a seed picks the same neurons
        in every checkpoint.

    Returns
    -------
    NeuronNetwork

    Raises
    ------
    MultifractalError
        Missing or inconsistently shaped weights, ``n_neurons`` larger than a layer,
        all-zero or non-finite weights.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.multifractal import neuron_network, multifractal_spectrum
    >>> rng = np.random.default_rng(0)
    >>> w = lambda o, i: rng.normal(0, 0.02, (o, i))
    >>> layers = [dict(q=w(64, 64), k=w(64, 64), v=w(64, 64), o=w(64, 64),
    ...                mlp_in=w(256, 64), mlp_out=w(64, 256)) for _ in range(2)]
    >>> net = neuron_network(layers, n_neurons=16)
    >>> net.n_nodes  # 16 inputs + 2 blocks x (3*16 qkv + 16 z + 16 attn out + 32 MLP + 16 out)
    272
    >>> spec = multifractal_spectrum(net)
    """
    return neuron_networks(model, n_neurons=n_neurons, n_mlp_neurons=n_mlp_neurons,
                           seeds=[random_state])[0]
