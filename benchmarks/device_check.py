"""Device check: recordings on a CUDA GPU against the CPU, and ``record`` against ``generate``.

One prepared script for a machine with a GPU (run on demand, not in CI):

1. **Parity.** The same paradigm is recorded on the CPU and on the GPU, with the
   model in float32 and in bfloat16, and every frame is compared (tolerances by
   dtype, see ``TOLERANCE``). Prompt frames are compared in full (same inputs);
   generated frames up to the first token where the two devices chose
   differently (greedy decoding may break a near-tie differently; after that the
   inputs differ and so must the frames).
2. **Throughput.** Generated tokens per second of ``llmfmri.record`` (every
   ``resid_post`` site streamed to disk) and of plain ``model.generate`` (greedy,
   no hooks, same prompts, same ``max_new_tokens``) at batch sizes 1, 8 and 32.

It prints one table. Without CUDA it says so and exits 0 (``--device cpu`` runs
the same steps CPU against CPU, to check the script itself).

Usage::

    python benchmarks/device_check.py                 # the default model (~/llmfmri_data)
    python benchmarks/device_check.py --tiny llama    # a tiny random model (no download)
    python benchmarks/device_check.py --quick         # fewer prompts and tokens

Write the printed table into benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

#: Largest relative error allowed between a GPU frame and the CPU frame, per dtype:
#: ``max over frames of |gpu - cpu| / (|cpu| + rms)`` where ``rms`` is the root mean
#: square of the CPU frame (so that near-zero coordinates of a large frame are not judged
#: on their own). float32: the two devices sum in different orders and use different
#: attention kernels; errors of ~1e-6 per operation grow through the layers to ~1e-4,
#: so 2e-3 leaves room without hiding a wrong site or position (those give O(1) errors).
#: bfloat16 keeps 8 bits of mantissa (eps = 2**-8 = 3.9e-3 per rounding); the devices
#: round at different points, and ~30 layers of such roundings give a few percent: 8e-2.
TOLERANCE = {"float32": 2e-3, "bfloat16": 8e-2}

PROMPTS = [
    "The history of the printing press begins",
    "To pack for a week of hiking in the mountains you need",
    "Vaccines train the immune system by",
    "A short note to a neighbour about a lost cat:",
    "The sky is blue during the day because",
    "A good way to learn a new language as an adult is",
    "Bees make honey by",
    "In chess, a knight moves",
]


def paradigm_dict(n_prompts, new_tokens, frames="both", name="devicecheck"):
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} (item {i})" for i in range(n_prompts)]
    half = n_prompts // 2
    return {
        "schema_version": 1, "name": name,
        "conditions": {"first": {"role": "task", "prompts": prompts[:half]},
                       "second": {"role": "control", "prompts": prompts[half:]}},
        "design": {"type": "event"}, "runs": {"n": 1},
        "generation": {"max_new_tokens": new_tokens}, "frames": frames,
    }


def load(args, dtype, device):
    import llmfmri as lf
    from llmfmri.models import tiny_model

    if args.tiny:
        model = tiny_model(args.tiny, dtype=dtype)
        return model.to(device)
    return lf.load_model(dtype=dtype, device=device, verbose=0)


# ------------------------------------------------------------------------------ parity
def compare(cpu, dev):
    """Largest relative error between two recordings of one run, and what was compared."""
    import numpy as np

    ev_c, ev_d = cpu.events(1), dev.events(1)
    Xc, Xd = cpu.data(1).astype(np.float64), dev.data(1).astype(np.float64)
    worst, n_compared, n_diverged = 0.0, 0, 0
    for pid in ev_c["prompt_id"].unique():
        rc = np.flatnonzero(ev_c["prompt_id"].to_numpy() == pid)
        rd = np.flatnonzero(ev_d["prompt_id"].to_numpy() == pid)
        kc = ev_c["frame_kind"].to_numpy()[rc]
        kd = ev_d["frame_kind"].to_numpy()[rd]
        pc, pd_ = rc[kc != "generated"], rd[kd != "generated"]
        gc, gd = rc[kc == "generated"], rd[kd == "generated"]
        tc = ev_c["token_id"].to_numpy()[gc]
        td = ev_d["token_id"].to_numpy()[gd]
        n = min(len(tc), len(td))
        same = n if np.array_equal(tc[:n], td[:n]) else int(np.argmax(tc[:n] != td[:n]))
        # generated frame t is the state that chose token t: frames 0..same are comparable
        keep = min(same + 1, n)
        n_diverged += int(same < max(len(tc), len(td)))
        rows_c = np.concatenate([pc, gc[:keep]])
        rows_d = np.concatenate([pd_, gd[:keep]])
        a, b = Xc[rows_c], Xd[rows_d]
        rms = np.sqrt((a * a).mean(axis=1, keepdims=True))
        if a.size:
            worst = max(worst, float((np.abs(b - a) / (np.abs(a) + rms + 1e-30)).max()))
        n_compared += len(rows_c)
    return worst, n_compared, n_diverged


def parity(args, device, tmp):
    import llmfmri as lf

    par = lf.load_paradigm(paradigm_dict(args.prompts, args.new_tokens))
    rows = []
    for dtype in ("float32", "bfloat16"):
        recs = {}
        for key, where in (("reference", "cpu"), ("checked", device)):
            model = load(args, dtype, where)
            out = os.path.join(tmp, f"parity-{dtype}-{key}")
            recs[key] = lf.record(model, par, sites="resid_post", out=out, batch_size=8,
                                  progress=False)
            del model
        worst, n, diverged = compare(recs["reference"], recs["checked"])
        ok = worst <= TOLERANCE[dtype]
        rows.append((dtype, n, diverged, worst, TOLERANCE[dtype], ok))
    return rows


# -------------------------------------------------------------------------- throughput
def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_record(model, args, batch, device, tmp):
    import llmfmri as lf

    n_prompts = max(2, batch * args.batches)
    par = lf.load_paradigm(paradigm_dict(n_prompts, args.new_tokens, frames="generated",
                                         name=f"speed{batch}"))
    out = os.path.join(tmp, f"speed-{batch}")
    sync(device)
    t0 = time.perf_counter()
    rec = lf.record(model, par, sites="resid_post", out=out, batch_size=batch, progress=False)
    sync(device)
    return rec.n_frames(1) / (time.perf_counter() - t0)


def time_generate(model, args, batch, device):
    import torch

    tok = model.tokenizer
    n_prompts = max(2, batch * args.batches)
    prompts = [f"{PROMPTS[i % len(PROMPTS)]} (item {i})" for i in range(n_prompts)]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    made = 0
    sync(device)
    t0 = time.perf_counter()
    for b0 in range(0, n_prompts, batch):
        enc = tok(prompts[b0:b0 + batch], return_tensors="pt", padding=True).to(device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=args.new_tokens, do_sample=False,
                                 pad_token_id=pad)
        new = out[:, enc["input_ids"].shape[1]:]
        # tokens until (and with) each row's end of sequence, as record counts frames
        eos = tok.eos_token_id
        for row in new.tolist():
            made += (row.index(eos) + 1) if eos in row else len(row)
    sync(device)
    return made / (time.perf_counter() - t0)


def throughput(args, device, tmp):
    model = load(args, "float32" if args.tiny else "bfloat16", device)
    rows = []
    for batch in args.batch_sizes:
        time_record(model, args, batch, device, tmp)  # warm-up (kernels, caches)
        rec = time_record(model, args, batch, device, tmp + f"/again{batch}")
        gen = time_generate(model, args, batch, device)
        rows.append((batch, rec, gen, rec / gen))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", metavar="FAMILY", help="use a tiny random model of this "
                        "family (gpt2, opt, gpt_neox, llama) instead of the default model")
    parser.add_argument("--device", default="cuda", help="device to check (default: cuda; "
                        "'cpu' runs every step CPU against CPU, to test this script)")
    parser.add_argument("--prompts", type=int, default=16, help="prompts for the parity check")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="batches per throughput point")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--quick", action="store_true",
                        help="4 prompts, 4 new tokens, 1 batch per point")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.new_tokens, args.batches = 4, 4, 1

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("No CUDA device on this machine: device_check.py compares GPU recordings with "
              "the CPU and times record on the GPU, so there is nothing to check here.")
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.simplefilter("ignore", UserWarning)  # e.g. generate's notes on padding
    name = f"tiny-{args.tiny}" if args.tiny else "default model (SmolLM2-135M-Instruct)"
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else args.device
    with tempfile.TemporaryDirectory() as tmp:
        par_rows = parity(args, args.device, tmp)
        speed_rows = throughput(args, args.device, tmp)
    print(f"device check: {name} on {where} against cpu "
          f"({args.prompts} prompts, {args.new_tokens} new tokens)")
    print(f"{'check':<28}{'value':>14}{'bound':>12}  result")
    for dtype, n, diverged, worst, tol, ok in par_rows:
        print(f"{'parity ' + dtype:<28}{worst:>14.3g}{tol:>12.3g}  "
              f"{'ok' if ok else 'FAILED'} ({n} frames, {diverged} prompts diverged)")
    for batch, rec, gen, ratio in speed_rows:
        print(f"{f'batch {batch}: record tok/s':<28}{rec:>14.1f}{'':>12}  "
              f"generate {gen:.1f} tok/s, record/generate {ratio:.2f}")
    return 0 if all(r[-1] for r in par_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
