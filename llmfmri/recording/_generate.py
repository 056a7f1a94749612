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

import numpy as np
import torch

from ._hooks import site_hooks


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
        ``kinds`` (per frame) and ``generated_ids`` / ``text`` (the generated continuation).
    """
    B = len(prompt_ids)
    lengths = [len(p) for p in prompt_ids]
    P = max(lengths)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((B, P), pad, dtype=torch.long)
    attn = torch.zeros((B, P), dtype=torch.long)
    for i, p in enumerate(prompt_ids):
        ids[i, P - len(p):] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p):] = 1
    ids, attn = ids.to(device), attn.to(device)
    pos = (attn.cumsum(1) - 1).clamp(min=0)

    gen_frames = mode in ("generated", "both")
    want_prompt = mode in ("prompt", "both", "pooled_last", "pooled_mean")
    n_pf = list(lengths) if n_prompt_frames is None else list(n_prompt_frames)
    # prompt and pooled paradigms may still generate a response (for behavioural scoring);
    # its tokens are kept as text, not as frames
    T = int(generation.max_new_tokens)
    want_gen = T > 0
    if want_prompt:
        span = max(n_pf)
        capture.prompt_slice = slice(P - span, P)
    capture.start(B, T if gen_frames else 0, max(n_pf) if want_prompt else 0)
    generators = None
    if want_gen and generation.do_sample:
        generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]
    stop = tuple(generation.stop or ())
    eos = eos_ids(model, tokenizer)

    tokens = np.zeros((B, T), dtype=np.int64)
    logps = np.zeros((B, T), dtype=np.float64)
    n_gen = np.full(B, T, dtype=np.int64)
    prompt_logp = None
    with torch.inference_mode(), site_hooks(model, capture.callbacks()):
        capture.step = 0
        # log-probs of prompt tokens need every position's logits; pooled means have none
        want_logp = mode in ("prompt", "both", "pooled_last")
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=want_gen,
                    **({} if want_logp else {"logits_to_keep": 1}))
        if want_logp:
            lp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
            prompt_logp = lp.gather(-1, ids[:, 1:, None])[..., 0].cpu().numpy()
            del lp
        elif want_prompt:
            prompt_logp = np.full((B, P - 1), np.nan)
        finished = np.zeros(B, dtype=bool)
        for t in range(T):
            logits = out.logits[:, -1].float()
            nxt = _choose(logits, generation, generators)
            lp = torch.log_softmax(logits, dim=-1).gather(-1, nxt[:, None])[:, 0]
            nxt_host = nxt.cpu().numpy()
            tokens[:, t] = nxt_host
            logps[:, t] = lp.cpu().numpy()
            for i in np.flatnonzero(~finished):
                done = int(nxt_host[i]) in eos
                if not done and stop:
                    text = tokenizer.decode(tokens[i, :t + 1].tolist())
                    done = any(s in text for s in stop)
                if done:
                    finished[i] = True
                    n_gen[i] = t + 1
            if finished.all() or t == T - 1:
                break
            attn = torch.cat([attn, torch.ones((B, 1), dtype=attn.dtype, device=device)], dim=1)
            capture.step = t + 1
            out = model(input_ids=nxt[:, None], attention_mask=attn,
                        position_ids=attn.sum(1, keepdim=True) - 1,
                        past_key_values=out.past_key_values, use_cache=True)
        del out
        gen_host = capture.gen.float().cpu().numpy() if capture.gen is not None else None
        prompt_host = capture.prompt.float().cpu().numpy() if capture.prompt is not None else None

    results = []
    ids_host = ids.cpu().numpy()
    for i in range(B):
        L, k = lengths[i], n_pf[i]
        frames, tok, posn, lps, kinds = [], [], [], [], []
        if want_prompt:
            row = prompt_host[i, prompt_host.shape[1] - k:]  # the last k positions (no pads)
            ptoks = ids_host[i, P - k:]
            plp = np.concatenate([[np.nan], prompt_logp[i]])
            plp[:P - L + 1] = np.nan  # the first real token has no context
            plp = plp[P - k:]
            ppos = np.arange(L - k, L)
            if mode == "pooled_last":
                frames.append(row[-1:]); tok.append(ptoks[-1:]); posn.append(ppos[-1:])
                lps.append(plp[-1:]); kinds.append(["pooled_last"])
            elif mode == "pooled_mean":
                frames.append(row.mean(0, keepdims=True)); tok.append([-1]); posn.append([-1])
                lps.append([np.nan]); kinds.append(["pooled_mean"])
            else:
                frames.append(row); tok.append(ptoks); posn.append(ppos); lps.append(plp)
                kinds.append(["prompt"] * k)
        if gen_frames:
            n = int(n_gen[i])
            frames.append(gen_host[i, :n]); tok.append(tokens[i, :n])
            posn.append(np.arange(L - 1, L - 1 + n)); lps.append(logps[i, :n])
            kinds.append(["generated"] * n)
        results.append({
            "frames": np.concatenate(frames, axis=0),
            "token_ids": np.concatenate([np.asarray(x, dtype=np.int64) for x in tok]),
            "positions": np.concatenate([np.asarray(x, dtype=np.int64) for x in posn]),
            "logprobs": np.concatenate([np.asarray(x, dtype=np.float64) for x in lps]),
            "kinds": [k_ for ks in kinds for k_ in ks],
            "generated_ids": tokens[i, :int(n_gen[i])].tolist() if want_gen else [],
            "response": tokenizer.decode(tokens[i, :int(n_gen[i])].tolist()) if want_gen else "",
        })
    return results
