"""Generation with per-token capture: our own KV-cached decoding loop.

We decode ourselves (rather than through ``model.generate``) so that every
detail that matters for a recording is explicit and exact:

* left padding with position ids from the attention mask, so that a frame
  recorded in a batch equals the frame recorded alone (pads never become frames);
* one random generator per prompt (seeded from the run seed and prompt id), so
  sampling does not depend on batch composition and a resumed run reproduces
  the uninterrupted one bit for bit;
* per-prompt termination (EOS or a stop string) without losing the frames of
  the other prompts in the batch;
* capture in hooks straight into one preallocated device buffer per batch
  (only the needed positions, cast once), copied to the host once per batch.

Frame conventions (see ``docs/recording.md``): generated frame ``t`` holds the
states of the forward step that produced generated token ``t`` -- for ``t = 0``
the last prompt position, then the position of token ``t - 1``. Prompt frame
``p`` holds the states at prompt position ``p``.
"""

from __future__ import annotations

import functools
import inspect

import numpy as np
import torch

from ._hooks import site_hooks


@functools.lru_cache(maxsize=None)
def _cache_kwarg(forward):
    """The name of the KV-cache argument of a model's ``forward``.

    transformers renamed ``past_key_values`` to ``cache`` (5.24 deprecates the old name,
    which 5.40 removes); the signature says which one this version takes.
    """
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out):
    """The KV cache a forward pass returned (``out.cache``, or ``out.past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


class _Capture:
    """Hook callbacks writing site activations into one (batch, frames, units) buffer."""

    def __init__(self, sites, indices, offsets, n_units, dtype, device):
        self.sites, self.indices, self.offsets = sites, indices, offsets
        self.n_units, self.dtype, self.device = n_units, dtype, device
        self.gen = None
        self.prompt = None
        self.step = 0
        self.prompt_slice = None  # positions of the prompt frames in the step-0 forward

    def start(self, batch, n_steps, n_prompt_positions):
        kw = dict(dtype=self.dtype, device=self.device)
        self.gen = torch.empty((batch, n_steps, self.n_units), **kw) if n_steps else None
        self.prompt = (torch.empty((batch, n_prompt_positions, self.n_units), **kw)
                       if n_prompt_positions else None)
        self.step = 0

    def callbacks(self):
        return {site: self._callback(site) for site in self.sites}

    def _callback(self, site):
        a, b = self.offsets[site]
        idx = self.indices[site]
        if idx is not None:
            idx = idx.to(self.device)

        def fn(h):
            x = h if idx is None else h.index_select(-1, idx)
            if self.step == 0 and self.prompt is not None:
                self.prompt[:, :, a:b] = x[:, self.prompt_slice]
            if self.gen is not None:
                self.gen[:, self.step, a:b] = x[:, -1]
            return None
        return fn


def _top_p_filter(logits, top_p):
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    remove = cum - torch.softmax(sorted_logits, dim=-1) > top_p  # keep the token crossing top_p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _choose(logits, gen, generators):
    """Next token per row: greedy, or sampled with each row's own generator."""
    if not gen.do_sample:
        return logits.argmax(-1)
    scaled = logits.float() / max(float(gen.temperature), 1e-8)
    if gen.top_p < 1.0:
        scaled = _top_p_filter(scaled, gen.top_p)
    probs = torch.softmax(scaled, dim=-1)
    return torch.stack([torch.multinomial(probs[i], 1, generator=g)[0]
                        for i, g in enumerate(generators)])


def eos_ids(model, tokenizer):
    ids = set()
    for src in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if src is None:
            continue
        ids.update(src if isinstance(src, (list, tuple)) else [src])
    return sorted(ids)


def _left_pad(tokenizer, prompt_ids, device):
    """Left-padded ids, attention mask and position ids for a batch of prompts."""
    B, P = len(prompt_ids), max(len(p) for p in prompt_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((B, P), pad, dtype=torch.long)
    attn = torch.zeros((B, P), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p):] = 1
    ids, attn = ids.to(device), attn.to(device)
    return ids, attn, (attn.cumsum(1) - 1).clamp(min=0)


class _Decoded:
    """What one batch's decoding loop produced, per prompt (host arrays)."""

    def __init__(self, B, T):
        self.tokens = np.zeros((B, T), dtype=np.int64)
        self.logps = np.zeros((B, T), dtype=np.float64)
        self.n_gen = np.full(B, T, dtype=np.int64)
        self.prompt_logp = None
        self.gen_frames = None
        self.prompt_frames = None


def _prompt_logprobs(out, ids, want_logp, want_prompt):
    """Log-probability of every prompt token given its context (NaN where not computed)."""
    if want_logp:
        lp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
        return lp.gather(-1, ids[:, 1:, None])[..., 0].cpu().numpy()
    if want_prompt:
        B, P = ids.shape
        return np.full((B, P - 1), np.nan)
    return None


def _decode(model, tokenizer, capture, ids, attn, pos, *, generation, mode, seeds, device):
    """The KV-cached decoding loop with capture; returns a :class:`_Decoded`."""
    B = ids.shape[0]
    T = int(generation.max_new_tokens)
    res = _Decoded(B, T)
    generators = None
    if T > 0 and generation.do_sample:
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    stop = tuple(generation.stop or ())
    eos = eos_ids(model, tokenizer)
    want_prompt = mode in ("prompt", "both", "pooled_last", "pooled_mean")
    with torch.inference_mode(), site_hooks(model, capture.callbacks()):
        capture.step = 0
        # log-probs of prompt tokens need every position's logits; pooled means have none
        want_logp = mode in ("prompt", "both", "pooled_last")
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=T > 0,
                    **({} if want_logp else {"logits_to_keep": 1}))
        res.prompt_logp = _prompt_logprobs(out, ids, want_logp, want_prompt)
        finished = np.zeros(B, dtype=bool)
        for t in range(T):
            logits = out.logits[:, -1].float()
            nxt = _choose(logits, generation, generators)
            lp = torch.log_softmax(logits, dim=-1).gather(-1, nxt[:, None])[:, 0]
            nxt_host = nxt.cpu().numpy()
            res.tokens[:, t] = nxt_host
            res.logps[:, t] = lp.cpu().numpy()
            for i in np.flatnonzero(~finished):
                done = int(nxt_host[i]) in eos
                if not done and stop:
                    text = tokenizer.decode(res.tokens[i, :t + 1].tolist())
                    done = any(s in text for s in stop)
                if done:
                    finished[i] = True
                    res.n_gen[i] = t + 1
            if finished.all() or t == T - 1:
                break
            attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=device)], dim=1)
            capture.step = t + 1
            out = model(input_ids=nxt[:, None], attention_mask=attn,
                        position_ids=attn.sum(1, keepdim=True) - 1,
                        **{_cache_kwarg(type(model).forward): _cache_of(out)}, use_cache=True)
        del out
        res.gen_frames = _host(capture.gen)
        res.prompt_frames = _host(capture.prompt)
    return res


def _host(buffer):
    """A capture buffer on the host, as float32 (float64 kept: the writer narrows and counts)."""
    if buffer is None:
        return None
    if buffer.dtype not in (torch.float32, torch.float64):
        buffer = buffer.float()
    return buffer.cpu().numpy()


def _prompt_result(dec, i, L, k, P, ids_host, mode):
    """Frames, tokens, positions, log-probs and kinds of prompt ``i``'s prompt frames."""
    row = dec.prompt_frames[i, dec.prompt_frames.shape[1] - k:]  # the last k positions (no pads)
    ptoks = ids_host[i, P - k:]
    plp = np.concatenate([[np.nan], dec.prompt_logp[i]])
    plp[:P - L + 1] = np.nan  # the first real token has no context
    plp = plp[P - k:]
    ppos = np.arange(L - k, L)
    if mode == "pooled_last":
        return row[-1:], ptoks[-1:], ppos[-1:], plp[-1:], ["pooled_last"]
    if mode == "pooled_mean":
        return row.mean(0, keepdims=True), [-1], [-1], [np.nan], ["pooled_mean"]
    return row, ptoks, ppos, plp, ["prompt"] * k


def run_batch(model, tokenizer, capture, prompt_ids, *, generation, mode, seeds, device,
              n_prompt_frames=None):
    """Run one batch of prompts; return one dict per prompt.

    Parameters
    ----------
    prompt_ids : list of list of int
        Token ids of each prompt (its whole context).
    mode : {"generated", "prompt", "both", "pooled_last", "pooled_mean"}
    seeds : list of int
        Seed of each prompt's sampling generator.
    n_prompt_frames : list of int, optional
        Number of trailing positions of each context that are prompt frames
        (default: all; continuous context passes only the new prompt's tokens).

    Returns
    -------
    list of dict
        ``frames`` (ndarray (n, n_units)), ``token_ids``, ``positions``, ``logprobs``,
        ``kinds`` (per frame) and ``generated_ids`` / ``response`` (the generated
        continuation; prompt and pooled paradigms keep it as text, not as frames).
    """
    B = len(prompt_ids)
    lengths = [len(p) for p in prompt_ids]
    ids, attn, pos = _left_pad(tokenizer, prompt_ids, device)
    P = ids.shape[1]
    gen_frames = mode in ("generated", "both")
    want_prompt = mode in ("prompt", "both", "pooled_last", "pooled_mean")
    n_pf = list(lengths) if n_prompt_frames is None else list(n_prompt_frames)
    T = int(generation.max_new_tokens)
    if want_prompt:
        capture.prompt_slice = slice(P - max(n_pf), P)
    capture.start(B, T if gen_frames else 0, max(n_pf) if want_prompt else 0)
    dec = _decode(model, tokenizer, capture, ids, attn, pos, generation=generation, mode=mode,
                  seeds=seeds, device=device)
    results = []
    ids_host = ids.cpu().numpy()
    for i in range(B):
        parts = []
        if want_prompt:
            parts.append(_prompt_result(dec, i, lengths[i], n_pf[i], P, ids_host, mode))
        n = int(dec.n_gen[i])
        if gen_frames:
            L = lengths[i]
            parts.append((dec.gen_frames[i, :n], dec.tokens[i, :n], np.arange(L - 1, L - 1 + n),
                          dec.logps[i, :n], ["generated"] * n))
        frames, tok, posn, lps, kinds = zip(*parts)
        generated = dec.tokens[i, :n].tolist() if T > 0 else []
        results.append({
            "frames": np.concatenate(frames, axis=0),
            "token_ids": np.concatenate([np.asarray(x, dtype=np.int64) for x in tok]),
            "positions": np.concatenate([np.asarray(x, dtype=np.int64) for x in posn]),
            "logprobs": np.concatenate([np.asarray(x, dtype=np.float64) for x in lps]),
            "kinds": [k_ for ks in kinds for k_ in ks],
            "generated_ids": generated,
            "response": tokenizer.decode(generated) if T > 0 else "",
        })
    return results
