"""Parameter importance ``|theta * dL/dtheta|`` over text sets, and the regions it defines.

Zhang et al. (ACL 2024, "Unveiling Linguistic Regions in Large Language
Models"; ``RESEARCH.md`` section 3) score each parameter by the first-order
Taylor estimate of the loss change when it is set to zero, ``|g * theta|``,
with the gradient accumulated over a language's text (backward passes only;
``model.step()`` is never called), then sum the scores over languages and
take, per weight matrix, the top 1 % (the core region), the bottom 1 % and a
random 1 % (controls), and a language's top 1 % minus the others' (a
monolingual region).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import (check_fraction, check_option, check_positive_int, logger, progress_bar,
                      with_verbose)
from ..exceptions import DataError
from ._regions import WeightRegion, _stem
from ._scoring import pad_id, pad_right
from ._weights import model_matrices, parse_matrix_name

__all__ = ["ParameterImportance", "parameter_importance", "load_importance"]

_FORMAT = "llmfmri-parameter-importance"


def text_windows(tokenizer, texts, *, max_length, stride=None, max_tokens=None):
    """Token windows of every text: ``[(ids, first scored position), ...]`` and the token count.

    Each text is read in a fresh context; texts longer than ``max_length`` are
    cut into windows (``stride`` default ``max_length - 1``: windows share one
    token, every token after a text's first is scored once). ``max_tokens``
    stops once that many tokens are scored (the last window is shortened).
    """
    from ._scoring import _windows

    stride = max_length - 1 if stride is None else stride
    out, n = [], 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        for win, first in _windows(ids, max_length, stride):
            if len(win) <= first:
                continue
            if max_tokens is not None and n + len(win) - first > max_tokens:
                keep = max_tokens - n
                if keep > 0:
                    out.append((win[:first + keep], first))
                    n += keep
                return out, n
            out.append((win, first))
            n += len(win) - first
    return out, n


class ParameterImportance:
    """Importance ``|theta * dL/dtheta|`` of every entry of the block matrices, per text set.

    Made by :func:`parameter_importance` (or :func:`load_importance`).

    Attributes
    ----------
    scores : dict of str to dict of str to ndarray (float32)
        ``scores[text_set][matrix]``, shape ``(out_features, in_features)``.
    n_tokens : dict of str to int
        Tokens scored per text set.
    info : dict
        Provenance: model id, settings, timings.
    """

    def __init__(self, scores, n_tokens, info=None):
        if not scores:
            raise DataError("ParameterImportance needs at least one text set.")
        self.scores = {s: dict(v) for s, v in scores.items()}
        self.n_tokens = {s: int(v) for s, v in n_tokens.items()}
        self.info = dict(info or {})
        first = next(iter(self.scores.values()))
        for s, v in self.scores.items():
            if list(v) != list(first) or any(v[n].shape != first[n].shape for n in first):
                raise DataError(f"Text set {s!r} has other matrices than "
                                f"{next(iter(self.scores))!r}.")

    @property
    def sets(self):
        return list(self.scores)

    @property
    def names(self):
        return list(next(iter(self.scores.values())))

    @property
    def shapes(self):
        return {n: a.shape for n, a in next(iter(self.scores.values())).items()}

    @property
    def n_params(self):
        return int(sum(a.size for a in next(iter(self.scores.values())).values()))

    def __repr__(self):
        return (f"ParameterImportance(sets={self.sets}, matrices={len(self.names)}, "
                f"n_params={self.n_params}, n_tokens={self.n_tokens})")

    def _check_sets(self, sets):
        if sets is None:
            return self.sets
        sets = [sets] if isinstance(sets, str) else list(sets)
        for s in sets:
            check_option("text set", s, self.sets, error=DataError)
        return sets

    def total(self, sets=None):
        """``{matrix: sum over sets of importance}`` (float32), the core-region score."""
        sets = self._check_sets(sets)
        out = {}
        for n in self.names:
            acc = np.zeros(self.shapes[n], dtype=np.float32)
            for s in sets:
                acc += self.scores[s][n]
            out[n] = acc
        return out

    def table(self):
        """Mean and total importance per matrix and text set.

        Returns
        -------
        pandas.DataFrame
            ``text_set, matrix, layer, kind, n_params, mean, total, share``
            (the matrix's share of the set's total importance).
        """
        rows = []
        for s in self.sets:
            grand = float(sum(float(a.sum(dtype=np.float64)) for a in self.scores[s].values()))
            for n, a in self.scores[s].items():
                layer, kind = parse_matrix_name(n)
                tot = float(a.sum(dtype=np.float64))
                rows.append({"text_set": s, "matrix": n, "layer": layer, "kind": kind,
                             "n_params": int(a.size), "mean": tot / a.size, "total": tot,
                             "share": tot / grand if grand > 0 else float("nan")})
        return pd.DataFrame(rows)

    # -------------------------------------------------------------- regions
    def region(self, rule="top", fraction=0.01, *, sets=None, random_state=None, label=None):
        """A region of each matrix by importance summed over ``sets``.

        Parameters
        ----------
        rule : {"top", "bottom", "random"}, default="top"
            ``"top"``: the ``int(fraction * size)`` most important entries of
            each matrix (the core region with every set); ``"bottom"``: the
            least important; ``"random"``: uniformly random entries (same
            counts).
        fraction : float, default=0.01
        sets : str or list of str, optional
            Text sets whose importance is summed (default all).
        random_state : optional
            For ``"random"``.
        label : str, optional

        Returns
        -------
        WeightRegion
        """
        check_option("rule", rule, ("top", "bottom", "random"))
        fraction = check_fraction("fraction", fraction)
        sets = self._check_sets(sets)
        info = {"fraction": fraction, "sets": sets, "importance": self.info.get("model_id")}
        if rule == "random":
            reg = WeightRegion.random(self.shapes, fraction, random_state=random_state)
            reg.label, reg.info = label or f"random{_pct(fraction)}", info
            return reg
        total = self.total(sets) if len(sets) > 1 else self.scores[sets[0]]
        masks = {n: _extreme(a, fraction, rule) for n, a in total.items()}
        return WeightRegion(masks, label=label or f"{rule}{_pct(fraction)}", rule=rule,
                            info=info)

    def specific_region(self, text_set, fraction=0.01, *, others=None, label=None):
        """A set's top ``fraction`` minus every other set's top ``fraction`` (per matrix).

        Zhang et al.'s monolingual region (``top & ~other_top`` for each other
        language). The result is smaller than ``fraction`` by the overlap.

        Parameters
        ----------
        text_set : str
        fraction : float, default=0.01
        others : list of str, optional
            Default every other set.
        label : str, optional
        """
        fraction = check_fraction("fraction", fraction)
        (text_set,) = self._check_sets([text_set])
        others = [s for s in self.sets if s != text_set] if others is None \
            else self._check_sets(others)
        if not others or text_set in others:
            raise DataError(f"specific_region needs other text sets than {text_set!r}; the "
                            f"importance has sets {self.sets}.")
        masks = {}
        for n in self.names:
            m = _extreme(self.scores[text_set][n], fraction, "top")
            for o in others:
                m &= ~_extreme(self.scores[o][n], fraction, "top")
            masks[n] = m
        return WeightRegion(masks, label=label or f"{text_set}-specific{_pct(fraction)}",
                            rule="specific", info={"fraction": fraction, "set": text_set,
                                                   "others": others})

    # ----------------------------------------------------------------- files
    def add_to(self, outputs, name):
        """Plan ``<name>.safetensors`` (float32, keys ``<set>/<matrix>``) and ``<name>.json``."""
        from safetensors.numpy import save as st_save

        meta = {"format": _FORMAT, "version": 1, "sets": self.sets, "n_tokens": self.n_tokens,
                "matrices": {n: list(s) for n, s in self.shapes.items()}, "info": self.info,
                "scores": Path(name).name + ".safetensors"}
        outputs.add(f"{name}.safetensors", lambda: st_save(
            {f"{s}/{n}": np.ascontiguousarray(a) for s, v in self.scores.items()
             for n, a in v.items()}, metadata={"format": _FORMAT}))
        outputs.add_json(f"{name}.json", meta)

    def save(self, path, *, overwrite=False):
        """Write ``<stem>.safetensors`` and ``<stem>.json`` (refuses existing files unless
        ``overwrite``); read back with :func:`load_importance`."""
        from ..io import OutputSet

        stem = _stem(path)
        out = OutputSet(stem.parent, overwrite=overwrite)
        self.add_to(out, stem.name)
        return out.write()


def load_importance(path):
    """Read importance written by :meth:`ParameterImportance.save`."""
    from safetensors.numpy import load_file

    stem = _stem(path)
    meta_path, data_path = Path(f"{stem}.json"), Path(f"{stem}.safetensors")
    for p in (meta_path, data_path):
        if not p.is_file():
            raise FileNotFoundError(f"Importance file {p} does not exist (importance is saved "
                                    "as <stem>.json and <stem>.safetensors).")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != _FORMAT:
        raise DataError(f"{meta_path} is not parameter importance (format "
                        f"{meta.get('format')!r}).")
    flat = load_file(str(data_path))
    scores = {s: {n: flat[f"{s}/{n}"] for n in meta["matrices"]} for s in meta["sets"]}
    return ParameterImportance(scores, meta["n_tokens"], meta.get("info"))


def _pct(fraction):
    return f"{100 * fraction:g}%"


def _extreme(a, fraction, rule):
    """Mask of the ``int(fraction * size)`` largest (``top``) or smallest entries of ``a``."""
    flat = a.reshape(-1)
    k = int(fraction * flat.size)
    mask = np.zeros(flat.size, dtype=bool)
    if k <= 0:
        return mask.reshape(a.shape)
    if k >= flat.size:
        mask[:] = True
        return mask.reshape(a.shape)
    if rule == "top":
        idx = np.argpartition(flat, flat.size - k)[flat.size - k:]
    else:
        idx = np.argpartition(flat, k - 1)[:k]
    mask[idx] = True
    return mask.reshape(a.shape)


@contextlib.contextmanager
def _gradient_mode(model, params):
    """Only ``params`` need gradients, eval mode; flags, grads and mode restored afterwards."""
    all_params = list(model.parameters())
    flags = [p.requires_grad for p in all_params]
    grads = [p.grad for p in all_params]
    training = model.training
    wanted = {id(p) for p in params}
    try:
        for p in all_params:
            p.requires_grad_(id(p) in wanted)
            p.grad = None
        model.eval()
        yield
    finally:
        for p, f, g in zip(all_params, flags, grads):
            p.grad = g
            p.requires_grad_(f)
        model.train(training)


def _batches(windows, batch_size, batch_tokens):
    """Windows grouped into batches (sorted by length: less padding), as index lists."""
    order = sorted(range(len(windows)), key=lambda j: len(windows[j][0]))
    batch, width = [], 0
    for j in order:
        w = len(windows[j][0])
        if batch and (len(batch) >= batch_size
                      or (batch_tokens and max(width, w) * (len(batch) + 1) > batch_tokens)):
            yield batch
            batch, width = [], 0
        batch.append(j)
        width = max(width, w)
    if batch:
        yield batch


def _batch_loss(model, windows, idx, pad, device):
    """Summed NLL of the scored tokens of windows ``idx`` (one forward pass)."""
    import torch

    batch = [windows[j] for j in idx]
    ids, mask = pad_right([w for w, _ in batch], pad)
    target = torch.full((len(batch), ids.shape[1] - 1), -100, dtype=torch.long)
    for i, (w, first) in enumerate(batch):
        target[i, first - 1:len(w) - 1] = torch.as_tensor(w[first:])
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                   use_cache=False).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), target.reshape(-1).to(device),
        ignore_index=-100, reduction="sum")


@with_verbose
def parameter_importance(model, texts, *, kinds=None, layers=None, tokenizer=None,
                         max_length=256, stride=None, batch_size=8, batch_tokens=None,
                         max_tokens=None, progress=False, verbose=None):
    """Importance ``|theta * dL/dtheta|`` of every entry of the block matrices, per text set.

    For each text set, the gradient of the mean token NLL over the set's text
    (every token after a text's first, in windows of ``max_length`` tokens) is
    accumulated over chunks of text by backward passes -- the weights are
    never updated -- and multiplied by the weights: the first-order estimate
    of the loss change when an entry is set to zero (Zhang et al. 2024).
    Gradients are needed only for the matrices scored (other parameters are
    frozen for the call); they are accumulated in float32 per parameter, and
    the model's ``requires_grad`` flags, gradients and train/eval mode are
    restored afterwards (its weights are never written).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : mapping, list of str, str or Path
        Text sets (:func:`load_texts`: ``"domains"`` gives the domains
        paradigm's passages, a ``.txt`` file, ``{name: texts}``).
    kinds : str or list of str, optional
        Matrix kinds (:data:`MATRIX_KINDS`); default all.
    layers : list of int, optional
    tokenizer : optional
        Default ``model.tokenizer``.
    max_length : int, default=256
        Tokens per window (bounds memory: activations of one batch).
    stride : int, optional
        Default ``max_length - 1`` (windows share one token).
    batch_size : int, default=8
        Windows per forward/backward pass.
    batch_tokens : int, optional
        Also cap ``batch width * windows`` per pass.
    max_tokens : int, optional
        Score at most this many tokens per text set.
    progress : bool, default=False
    verbose : optional

    Returns
    -------
    ParameterImportance

    Raises
    ------
    DataError
        A text set without a token to score.
    ValueError
        Bad sizes, kinds or layers.
    """
    import torch

    from ._scoring import context_limit, load_texts

    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("parameter_importance needs a tokenizer: load the model with "
                         "llmfmri.load_model or pass tokenizer=.")
    sets = load_texts(texts)
    limit = context_limit(model, tokenizer)
    max_length = check_positive_int("max_length", max_length, minimum=2)
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's context limit {limit}.")
    if stride is not None:
        stride = check_positive_int("stride", stride)
        if stride > max_length - 1:
            raise ValueError(f"stride must be < max_length ({max_length}), but got {stride}.")
    batch_size = check_positive_int("batch_size", batch_size)
    batch_tokens = check_positive_int("batch_tokens", batch_tokens, allow_none=True)
    max_tokens = check_positive_int("max_tokens", max_tokens, allow_none=True)
    mats = model_matrices(model, kinds, layers)
    params = list({id(m.param): m.param for m in mats.values()}.values())
    windows = {}
    for name, items in sets.items():
        windows[name], n = text_windows(tokenizer, items, max_length=max_length, stride=stride,
                                        max_tokens=max_tokens)
        if n == 0:
            raise DataError(f"Text set {name!r} has no token to score (each text needs at "
                            "least two tokens).")
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    native = all(p.dtype == torch.float32 for p in params)
    scores, n_tokens = {}, {}
    total = sum(len(w) for w in windows.values())
    bar = progress_bar(total=total, desc="importance", unit="window", verbose=progress)
    t0 = time.perf_counter()
    try:
        with _gradient_mode(model, params):
            for name, wins in windows.items():
                n = sum(len(w) - first for w, first in wins)
                acc = None if native else {id(p): torch.zeros(p.shape, dtype=torch.float32,
                                                              device=p.device) for p in params}
                for p in params:
                    p.grad = None
                for idx in _batches(wins, batch_size, batch_tokens):
                    loss = _batch_loss(model, wins, idx, pad, device) / n
                    loss.backward()
                    if acc is not None:  # low-precision weights: accumulate in float32
                        for p in params:
                            if p.grad is not None:
                                acc[id(p)] += p.grad.float()
                                p.grad = None
                    bar.update(len(idx))
                with torch.no_grad():
                    prod = {}
                    for p in params:
                        g = p.grad if acc is None else acc[id(p)]
                        prod[id(p)] = (torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                                       if g is None else (p.data.float() * g.float()).abs_())
                    scores[name] = {mn: m.read(prod[id(m.param)]).detach().cpu().numpy()
                                    .astype(np.float32, copy=True) for mn, m in mats.items()}
                    del prod, acc
                for p in params:
                    p.grad = None
                n_tokens[name] = n
                logger.info("importance of %r: %d tokens in %d windows", name, n, len(wins))
    finally:
        bar.close()
    from ._units import model_identity

    model_id, weights = model_identity(model)
    info = {"model_id": model_id, "model_weights": weights, "max_length": max_length,
            "stride": stride if stride is not None else max_length - 1,
            "batch_size": batch_size, "max_tokens": max_tokens,
            "loss": "mean token NLL per text set", "score": "|theta * dL/dtheta|",
            "seconds": time.perf_counter() - t0}
    return ParameterImportance(scores, n_tokens, info)
