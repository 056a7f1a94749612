"""Benchmark: parameter importance against one forward + backward pass; SVD reuse in the grid.

1. **Importance.** ``parameter_importance`` over N tokens (default 50,000: the
   English originals and German, French and Russian translations of the
   installed message catalogues, N/4 tokens each, windows of 256 tokens,
   8 per batch), against one plain forward + backward pass over exactly the
   same windows and batches (every parameter requiring a gradient, as in
   training; no optimiser step). Target: importance within 3x of the pass.
2. **Truncation grid.** ``truncation_search`` over M matrices x R ranks: the
   number of SVDs computed (target: one per matrix) and the time per SVD
   against the time per grid cell.

Usage::

    python benchmarks/weight_lesions.py                     # default model, 50,000 tokens
    python benchmarks/weight_lesions.py --tokens 4000       # quicker
    python benchmarks/weight_lesions.py --tiny llama        # tiny random model (checks the script)

Append the printed table to benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _load(args):
    if args.tiny:
        from llmfmri.models import tiny_model

        return tiny_model(args.tiny)
    from llmfmri import load_model

    return load_model()


def _texts(tokens):
    from llmfmri.lesions._catalogs import catalog_texts

    sets = catalog_texts(["de", "fr", "ru"], join=4)
    return sets, tokens // len(sets)


def plain_pass(model, sets, per_set, max_length, batch_size):
    """One forward + backward over the same windows and batches (all parameters with grads)."""
    from llmfmri.lesions._importance import _batch_loss, _batches, text_windows

    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = next(model.parameters()).device
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(True)
        p.grad = None
    model.eval()
    n_tok = 0
    t0 = time.perf_counter()
    for texts in sets.values():
        wins, n = text_windows(tok, texts, max_length=max_length, max_tokens=per_set)
        n_tok += n
        for idx in _batches(wins, batch_size, None):
            (_batch_loss(model, wins, idx, pad, device) / n).backward()
    seconds = time.perf_counter() - t0
    for p, f in zip(model.parameters(), flags):
        p.grad = None
        p.requires_grad_(f)
    return seconds, n_tok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tiny", default=None, help="a tiny model family instead")
    parser.add_argument("--grid-layers", type=int, default=6,
                        help="last layers in the truncation grid (default 6)")
    parser.add_argument("--skip-importance", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's; 1 when sharing the machine)")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from llmfmri.lesions._importance import parameter_importance
    from llmfmri.lesions._recall import recall_items
    from llmfmri.lesions._truncation import truncation_search

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    model = _load(args)
    rows = []
    if not args.skip_importance:
        sets, per_set = _texts(args.tokens)
        warm = {k: v[:2] for k, v in sets.items()}  # untimed: first-call costs of both paths
        plain_pass(model, warm, 64, args.max_length, args.batch_size)
        parameter_importance(model, warm, max_length=args.max_length, max_tokens=64)
        load0 = os.getloadavg()[0]
        base, n_tok = plain_pass(model, sets, per_set, args.max_length, args.batch_size)
        print(f"one forward + backward: {n_tok} tokens in {base:.1f} s", flush=True)
        t0 = time.perf_counter()
        imp = parameter_importance(model, sets, max_length=args.max_length,
                                   batch_size=args.batch_size, max_tokens=per_set)
        ours = time.perf_counter() - t0
        print(f"importance: {sum(imp.n_tokens.values())} tokens in {ours:.1f} s", flush=True)
        rows.append(("importance", f"{n_tok:,} tokens, {len(sets)} sets", f"{ours:.1f}",
                     f"{base:.1f}", f"{ours / base:.2f}x",
                     f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}"))
        del imp
    from llmfmri.models import get_adapter

    n_layers = get_adapter(model).n_layers
    layers = list(range(max(0, n_layers - args.grid_layers), n_layers))
    rhos = (0.5, 0.2, 0.1, 0.05, 0.01)
    items = recall_items(20, tokenizer=model.tokenizer, single_token=args.tiny is None)
    t0 = time.perf_counter()
    res = truncation_search(model, items, matrices=("mlp_in", "mlp_out"), layers=layers,
                            rhos=rhos, validation=0.5)
    grid = time.perf_counter() - t0
    n_cells = len(res.grid)
    import torch as _t

    w = _t.randn(model.config.intermediate_size if hasattr(model.config, "intermediate_size")
                 else 128, model.config.hidden_size if hasattr(model.config, "hidden_size")
                 else 32, dtype=_t.float64)
    t1 = time.perf_counter()
    _t.linalg.svd(w, full_matrices=False)
    one_svd = time.perf_counter() - t1
    rows.append(("truncation grid", f"{len(layers) * 2} matrices x {len(rhos)} rho = "
                 f"{n_cells} cells", f"{grid:.1f}", f"n_svd={res.settings['n_svd']}",
                 f"{grid / n_cells:.2f} s/cell", f"one SVD {one_svd:.2f} s"))
    print()
    print("| case | size | ours (s) | one fwd+bwd (s) / SVDs | ratio | notes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
