"""Freezing a region during further training, and the forgetting it prevents (or not).

Zhang et al. (2024, ``region_freeze_train.py``) further pre-train a model on a
new language while the core region keeps its values: after every optimiser
step the frozen entries are written back (``param.mul_(~mask);
param.add_(saved)``). Forgetting is the rise of perplexity on the original
texts. :func:`further_training` runs that loop (small, on CPU-sized data) and
:func:`forgetting_study` compares three conditions on the same batches: the
core region frozen, a random region of the same per-matrix size frozen, and
nothing frozen. The model is restored bit for bit afterwards.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .._utils import (check_fraction, check_option, check_positive_int, check_random_state,
                      logger, progress_bar, with_verbose)
from ..exceptions import DataError
from ._regions import WeightRegion, random_regions
from ._scoring import pad_id
from ._weights import model_matrices

__all__ = ["further_training", "TrainingRun", "forgetting_study", "ForgettingStudy"]

_TRAINABLE = ("all", "matrices")


class TrainingRun:
    """What :func:`further_training` returns.

    Attributes
    ----------
    curve : pandas.DataFrame
        One row per evaluation and text set: ``step, tokens_seen, text_set,
        n_tokens, nll_per_token, perplexity``.
    losses : pandas.DataFrame
        ``step, loss`` (mean training NLL per token of each step's batch).
    frozen_intact : bool or None
        Whether every frozen entry had its original value after every step
        (checked at the end; None without a region).
    settings : dict
    """

    def __init__(self, curve, losses, frozen_intact, settings):
        self.curve, self.losses = curve, losses
        self.frozen_intact, self.settings = frozen_intact, settings

    def __repr__(self):
        return (f"TrainingRun(steps={self.settings['steps']}, frozen="
                f"{self.settings['frozen']!r}, evaluations={self.curve['step'].nunique()})")


def _frozen_positions(model, region):
    """``[(param, flat positions, saved values)]`` of a region's entries."""
    mats = model_matrices(model)
    region.check_model(mats)
    out = []
    for name in region.nonempty():
        m = mats[name]
        pos = m.positions(region.masks[name])
        out.append((m.param, pos, m.param.data.view(-1)[pos].clone()))
    return out


def _eval(model, texts, step, tokens_seen, batch_size, max_length):
    from ._scoring import score_texts

    training = model.training
    model.eval()
    try:
        s = score_texts(model, texts, batch_size=batch_size, max_length=max_length)
    finally:
        model.train(training)
    g = s.groupby("text_set", sort=False)[["nll", "n_tokens"]].sum()
    rows = [{"step": step, "tokens_seen": tokens_seen, "text_set": name,
             "n_tokens": int(r.n_tokens), "nll_per_token": r.nll / r.n_tokens,
             "perplexity": float(np.exp(r.nll / r.n_tokens))} for name, r in g.iterrows()]
    return rows


@with_verbose
def further_training(model, texts, *, region=None, eval_texts=None, steps=50, lr=5e-5,
                     weight_decay=0.0, batch_size=4, max_length=128, eval_every=10,
                     trainable="all", eval_batch_size=8, eval_max_length=None, random_state=0,
                     restore=True, progress=False, verbose=None):
    """Train the model further on new text, keeping a region's weights at their values.

    A small causal-LM training loop (AdamW, no schedule): batches of
    ``batch_size`` windows of ``max_length`` tokens cut from ``texts`` and
    drawn in a seeded order (the same order for the same seed, so conditions
    compare on the same batches); after every optimiser step the region's
    entries are written back to their original values. Perplexity on
    ``eval_texts`` is measured before training and every ``eval_every``
    steps. With ``restore`` (default) every parameter, the train/eval mode,
    ``requires_grad`` flags and gradients are restored bit for bit at the end
    (also after an error): the trained model exists only during the call.

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : text sets
        The new text (:func:`load_texts`); all sets are pooled.
    region : WeightRegion, optional
        Entries frozen (None: nothing frozen).
    eval_texts : text sets, optional
        Forgetting is measured here (the original texts). Default ``texts``.
    steps : int, default=50
    lr : float, default=5e-5
    weight_decay : float, default=0.0
    batch_size : int, default=4
    max_length : int, default=128
    eval_every : int, default=10
    trainable : {"all", "matrices"}, default="all"
        Train every parameter, or the block matrices only.
    eval_batch_size, eval_max_length : see :func:`score_texts`
    random_state : int, default=0
        Order of the training windows.
    restore : bool, default=True
    progress : bool, default=False

    Returns
    -------
    TrainingRun
    """
    import torch

    from ._importance import _batch_loss, text_windows
    from ._scoring import load_texts

    steps = check_positive_int("steps", steps)
    eval_every = check_positive_int("eval_every", eval_every)
    batch_size = check_positive_int("batch_size", batch_size)
    max_length = check_positive_int("max_length", max_length, minimum=2)
    lr = check_fraction("lr", lr, high=10.0)
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a number >= 0, but got {weight_decay!r}.")
    check_option("trainable", trainable, _TRAINABLE)
    if region is not None and not isinstance(region, WeightRegion):
        raise TypeError(f"region must be a WeightRegion or None, but got "
                        f"{type(region).__name__}.")
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("further_training needs model.tokenizer (load the model with "
                         "llmfmri.load_model).")
    train_sets = load_texts(texts)
    eval_sets = load_texts(eval_texts) if eval_texts is not None else train_sets
    pooled = [t for items in train_sets.values() for t in items]
    windows, n_tok = text_windows(tokenizer, pooled, max_length=max_length)
    if not windows:
        raise DataError("The training texts have no token to learn from.")
    rng = check_random_state(random_state)
    order = []
    while len(order) < steps * batch_size:
        order.extend(rng.permutation(len(windows)).tolist())
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)

    all_params = list(model.named_parameters())
    saved = {n: p.detach().clone() for n, p in all_params} if restore else None
    flags = [p.requires_grad for _, p in all_params]
    grads = [p.grad for _, p in all_params]
    was_training = model.training
    if trainable == "matrices":
        train_ids = {id(m.param) for m in model_matrices(model).values()}
    else:
        train_ids = {id(p) for _, p in all_params}
    params = [p for _, p in all_params if id(p) in train_ids]
    frozen = _frozen_positions(model, region) if region is not None else []
    curve, losses = [], []
    intact = None
    t0 = time.perf_counter()
    bar = progress_bar(total=steps, desc="further training", unit="step", verbose=progress)
    try:
        for _, p in all_params:
            p.requires_grad_(id(p) in train_ids)
            p.grad = None
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        curve += _eval(model, eval_sets, 0, 0, eval_batch_size, eval_max_length)
        model.train()
        seen = 0
        for step in range(1, steps + 1):
            idx = order[(step - 1) * batch_size: step * batch_size]
            n = sum(len(windows[j][0]) - windows[j][1] for j in idx)
            opt.zero_grad(set_to_none=True)
            loss = _batch_loss(model, windows, idx, pad, device) / n
            loss.backward()
            opt.step()
            with torch.no_grad():
                for p, pos, values in frozen:  # the region keeps its values
                    p.data.view(-1)[pos] = values
            seen += n
            losses.append({"step": step, "loss": float(loss.detach())})
            if step % eval_every == 0 or step == steps:
                curve += _eval(model, eval_sets, step, seen, eval_batch_size, eval_max_length)
            bar.update(1)
        if frozen:
            intact = all(torch.equal(p.data.view(-1)[pos], values) for p, pos, values in frozen)
    finally:
        bar.close()
        with torch.no_grad():
            for (n, p), f, g in zip(all_params, flags, grads):
                if saved is not None:
                    p.data.copy_(saved[n])
                p.grad = g
                p.requires_grad_(f)
        model.train(was_training)
    logger.info("further_training: %d steps, %d tokens, %s frozen, %.1f s", steps, seen,
                region.label if region is not None else "nothing", time.perf_counter() - t0)
    settings = {"steps": steps, "lr": lr, "weight_decay": weight_decay,
                "batch_size": batch_size, "max_length": max_length, "eval_every": eval_every,
                "trainable": trainable, "random_state": random_state,
                "frozen": region.label if region is not None else None,
                "n_frozen": region.n_params if region is not None else 0,
                "train_tokens_available": n_tok, "seconds": time.perf_counter() - t0}
    return TrainingRun(pd.DataFrame(curve), pd.DataFrame(losses), intact, settings)


class ForgettingStudy:
    """What :func:`forgetting_study` returns.

    Attributes
    ----------
    curves : pandas.DataFrame
        :attr:`TrainingRun.curve` rows with a ``condition`` column
        (``"none"``, ``"core"``, ``"random-<k>"``) and ``forgetting``
        (perplexity - perplexity at step 0 of the same condition and set).
    runs : dict of str to TrainingRun
    """

    def __init__(self, curves, runs):
        self.curves, self.runs = curves, runs

    def __repr__(self):
        return f"ForgettingStudy(conditions={list(self.runs)})"

    def final(self):
        """The last evaluation of each condition and text set."""
        last = self.curves.groupby("condition")["step"].transform("max")
        return self.curves[self.curves["step"] == last].reset_index(drop=True)


@with_verbose
def forgetting_study(model, texts, eval_texts, region, *, n_random=1, random_state=0,
                     verbose=None, **kwargs):
    """Further training with the core region frozen, a matched random region frozen, nothing.

    Every condition trains from the same weights on the same batches (the
    model is restored between conditions).

    Parameters
    ----------
    model : transformers.PreTrainedModel
    texts : text sets
        New text to train on.
    eval_texts : text sets
        Original texts (forgetting).
    region : WeightRegion
        The core region (or any region to freeze).
    n_random : int, default=1
        Random regions with the same per-matrix counts (:func:`random_regions`).
    random_state : int, default=0
        Seeds the random regions; the batch order uses ``kwargs["random_state"]``
        of :func:`further_training` (same seed for every condition).
    **kwargs
        Passed to :func:`further_training` (steps, lr, batch_size...).

    Returns
    -------
    ForgettingStudy
    """
    if not isinstance(region, WeightRegion):
        raise TypeError(f"region must be a WeightRegion, but got {type(region).__name__}.")
    n_random = check_positive_int("n_random", n_random, minimum=0)
    kwargs.pop("restore", None)
    conditions = {"none": None, "core": region}
    if n_random:
        for k, r in enumerate(random_regions(region, n_random, random_state=random_state)):
            conditions[f"random-{k}"] = r
    runs, frames = {}, []
    for name, reg in conditions.items():
        run = further_training(model, texts, region=reg, eval_texts=eval_texts, restore=True,
                               **kwargs)
        runs[name] = run
        frames.append(run.curve.assign(condition=name))
    curves = pd.concat(frames, ignore_index=True)
    base = curves[curves["step"] == 0].set_index(["condition", "text_set"])["perplexity"]
    curves["forgetting"] = curves["perplexity"] - [base[(c, s)] for c, s in
                                                   zip(curves["condition"], curves["text_set"])]
    return ForgettingStudy(curves, runs)
