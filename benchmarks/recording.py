"""Benchmark the recorder on the default model (run on demand, not in CI).

Measures generated tokens per second of
  (a) plain ``model.generate`` (greedy, no hooks),
  (b) llmfmri's decoding loop without hooks (what ``record`` runs, minus capture),
  (c) ``record()`` with every ``resid_post`` site (30 x 576 = 17,280 units) streamed to disk,
  (d) ``model.generate(output_hidden_states=True, return_dict_in_generate=True)``,
at batch sizes 1 and 8, and the peak resident memory of ``record()`` for a short run and a
10x longer run (each in a fresh subprocess).

Usage::

    python benchmarks/recording.py [--threads 1] [--new-tokens 32] [--repeats 3]

Write the printed table into benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "Tell me about the history of the printing press.",
    "What should I pack for a week of hiking in the mountains?",
    "Explain how vaccines train the immune system.",
    "Write a short note to a neighbour about a lost cat.",
    "Why is the sky blue during the day and red at sunset?",
    "Describe a good way to learn a new language as an adult.",
    "How do bees make honey?",
    "What are the rules of chess for moving a knight?",
]


def paradigm_dict(n_prompts, new_tokens, name="bench"):
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} (item {i})" for i in range(n_prompts)]
    return {
        "schema_version": 1, "name": name,
        "conditions": {"question": {"role": "task", "prompts": prompts}},
        "design": {"type": "event"},
        "runs": {"n": 1},
        "generation": {"max_new_tokens": new_tokens},
    }


def _encode_batch(tok, batch):
    return tok(batch, return_tensors="pt", padding=True)


def throughput(model, batch_size, new_tokens, repeats, tmp, n_batches=4):
    """Generated tokens per second over ``n_batches`` batches of ``batch_size`` prompts."""
    import torch

    import llmfmri as lf
    from llmfmri.paradigm import load_paradigm
    from llmfmri.recording._generate import _Capture, run_batch

    tok = model.tokenizer
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} (item {i})" for i in range(batch_size)]
    enc = [tok(p)["input_ids"] for p in prompts]
    batch = _encode_batch(tok, prompts)
    gen = load_paradigm(paradigm_dict(2, new_tokens)).generation
    n_tokens = n_batches * batch_size * new_tokens  # every prompt runs to full length
    out = {}

    def timed(fn, calls=n_batches):
        best = 0.0
        for _ in range(repeats):
            t = time.perf_counter()
            made = [fn() for _ in range(calls)]
            elapsed = time.perf_counter() - t
            tokens = sum(made) if all(isinstance(m, int) for m in made) else n_tokens
            best = max(best, tokens / elapsed)
        return best

    with torch.inference_mode():
        out["generate"] = timed(lambda: model.generate(
            **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            pad_token_id=tok.pad_token_id))
        out["generate_hidden_states"] = timed(lambda: model.generate(
            **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            pad_token_id=tok.pad_token_id, output_hidden_states=True, return_dict_in_generate=True))
    no_capture = _Capture([], {}, {}, 0, torch.float32, torch.device("cpu"))
    from llmfmri.recording import _generate

    real_eos_ids = _generate.eos_ids
    _generate.eos_ids = lambda model, tok: []  # run every prompt to full length, as min_new_tokens does
    try:
        out["llmfmri_loop"] = timed(lambda: run_batch(
            model, tok, no_capture, enc, generation=gen, mode="generated", seeds=[0] * len(enc),
            device=torch.device("cpu")))
        counter = [0]

        def rec():
            counter[0] += 1
            return lf.record(model, paradigm_dict(n_batches * batch_size, new_tokens,
                                           name=f"b{counter[0]}"),
                      sites="resid_post", out=Path(tmp) / f"bs{batch_size}-{counter[0]}",
                      batch_size=batch_size, progress=False).n_frames(1)
        out["record_resid_post"] = timed(rec, calls=1)
    finally:
        _generate.eos_ids = real_eos_ids
    return out


def memory_child(n_prompts, new_tokens, threads, out_dir):
    """Run record() in this process and print its peak RSS (MiB) as JSON."""
    import torch

    torch.set_num_threads(threads)
    import llmfmri as lf

    model = lf.load_model()
    import gc
    import threading

    gc.collect()
    before = _rss_mib()
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_mib())
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t = time.perf_counter()
    rec = lf.record(model, paradigm_dict(n_prompts, new_tokens), sites="resid_post", out=out_dir,
                    batch_size=8, progress=False)
    elapsed = time.perf_counter() - t
    stop.set()
    thread.join()
    print(json.dumps({"n_prompts": n_prompts, "frames": rec.n_frames(1),
                      "units": rec.units.n_units, "rss_before_record_mib": round(before, 1),
                      "peak_rss_during_record_mib": round(peak[0], 1),
                      "growth_mib": round(peak[0] - before, 1),
                      "lifetime_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "seconds": round(elapsed, 1)}))


def _rss_mib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--short-prompts", type=int, default=16)
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        memory_child(args.child[0], args.child[1], args.threads, args.child_out)
        return
    import torch

    torch.set_num_threads(args.threads)
    import llmfmri as lf

    model = lf.load_model()
    print(f"torch threads {args.threads}, new tokens {args.new_tokens}, best of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        for bs in (1, 8):
            r = throughput(model, bs, args.new_tokens, args.repeats, tmp)
            base = r["generate"]
            print(f"batch {bs}: " + ", ".join(f"{k} {v:.1f} tok/s ({v / base:.2f}x generate)"
                                             for k, v in r.items()))
            print(f"  record vs llmfmri loop without hooks: "
                  f"{100 * (1 - r['record_resid_post'] / r['llmfmri_loop']):.1f}% slower")
        for n in (args.short_prompts, 10 * args.short_prompts):
            res = subprocess.run(
                [sys.executable, __file__, "--threads", str(args.threads), "--child", str(n),
                 str(args.new_tokens), "--child-out", str(Path(tmp) / f"mem{n}")],
                capture_output=True, text=True, env={**os.environ})
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
            print("memory:", line[-1] if line else res.stderr[-2000:])


if __name__ == "__main__":
    main()
