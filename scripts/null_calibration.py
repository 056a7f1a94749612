"""Null calibration of task-network inference on a real model.

A homogeneous pool of everyday prompts (the control prompts of functional_networks,
``paradigms/stimuli/fn_control.txt``) is split at random, again and again, into a
pseudo-task and a control condition. Each split is a block paradigm with the main job's
own settings (off/on/off blocks of 2 control and 4 pseudo-task prompts, 6 cycles, 2 runs with
disjoint prompts, greedy generation of 12 new tokens, one frame per generated token,
``resid_post`` of every layer). Each split is recorded exactly as ``llmfmri run`` would
record it, and the pseudo-task network is mapped with each inference:

- ``prompt``: prompt-level random effects (one mean per prompt, a second-level t test
  across prompts), FDR q <= alpha (the main job's default);
- ``permutation``: max-T exchanging whole prompts within runs, FWER p <= alpha;
- ``token``: token-level first-level GLM with AR(1) noise, FDR q <= alpha (a fixed effect
  of the presented prompts).

There is no task, so every unit declared is a false positive: the fraction of splits in
which a method declares any network estimates its family-wise false-positive rate, whose
nominal level is alpha (FDR controls the family-wise rate under a complete null too).

Usage (from the project root; ~15 s of recording and ~15 s of analysis per split on 2 CPU
cores; recordings are deleted after their analysis unless --keep)::

    .venv/bin/python scripts/null_calibration.py --splits 20 --out runs/null

Writes ``OUT/null_calibration.tsv`` (one row per split and method) and prints a summary
table with Clopper-Pearson 95 % intervals.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
POOL = ROOT / "paradigms" / "stimuli" / "fn_control.txt"
METHODS = {"prompt": "fdr", "permutation": "maxt", "token": "fdr"}


def pool_prompts():
    lines = [ln.strip() for ln in POOL.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def split_paradigm(prompts, seed, *, per_run_task=24, per_run_control=24, n_runs=2):
    """A block paradigm whose pseudo-task and control prompts are a random split of the pool."""
    from llmfmri.paradigm import load_paradigm

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(prompts))
    n_task, n_control = per_run_task * n_runs, per_run_control * n_runs
    task = [prompts[i] for i in order[:n_task]]
    control = [prompts[i] for i in order[n_task:n_task + n_control]]
    cycles = per_run_task // 4
    return load_paradigm({
        "schema_version": 1, "name": f"nullsplit{seed}",
        "description": f"random split {seed} of the functional_networks control prompts",
        "conditions": {"control": {"role": "control", "prompts": control},
                       "pseudo": {"role": "task", "prompts": task}},
        "design": {"type": "block", "sequence": ["control", "task", "control"],
                   "tasks": ["pseudo"], "cycles": cycles,
                   "prompts_per_block": {"task": 4, "control": 2}},
        "runs": {"n": n_runs, "split": "disjoint"},
        "generation": {"max_new_tokens": 12, "do_sample": False},
        "frames": "generated", "context": "independent", "seed": 0,
    })


def analyse(rec, *, alpha, n_permutations, seed):
    import llmfmri.networks as nw

    rows = []
    for inference, correction in METHODS.items():
        t0 = time.perf_counter()
        tm = nw.task_map(rec, "pseudo - control", inference=inference,
                         n_permutations=n_permutations, random_state=seed)
        net = nw.threshold(tm, alpha=alpha, correction=correction)
        rows.append({"split": seed, "inference": inference, "correction": correction,
                     "n_units": int(net.n_units), "declared": bool(net.n_units > 0),
                     "max_z": float(np.max(tm.z.values)), "seconds": time.perf_counter() - t0})
    return rows


def clopper_pearson(k, n, level=0.95):
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="seed of the first split")
    parser.add_argument("--out", default="runs/null")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--n-permutations", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep each split's recording")
    args = parser.parse_args(argv)

    import llmfmri as lf

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table_path = out / "null_calibration.tsv"
    done = pd.read_csv(table_path, sep="\t") if table_path.exists() else pd.DataFrame()
    model = lf.load_model()
    prompts = pool_prompts()
    rows = done.to_dict("records")
    for seed in range(args.first, args.first + args.splits):
        if len(done) and seed in set(done["split"]):
            continue
        t0 = time.perf_counter()
        paradigm = split_paradigm(prompts, seed)
        rec = lf.record(model, paradigm, out=out / f"split-{seed}", progress=False)
        t_rec = time.perf_counter() - t0
        new = analyse(rec, alpha=args.alpha, n_permutations=args.n_permutations, seed=seed)
        for r in new:
            r["record_seconds"] = t_rec
        rows += new
        pd.DataFrame(rows).to_csv(table_path, sep="\t", index=False)  # resumable
        print(f"split {seed}: " + ", ".join(f"{r['inference']} {r['n_units']}" for r in new)
              + f" units  [{t_rec:.0f} s recording, "
              f"{sum(r['seconds'] for r in new):.0f} s analysis]", flush=True)
        if not args.keep:
            shutil.rmtree(out / f"split-{seed}")
    table = pd.DataFrame(rows)
    print(f"\n{table['split'].nunique()} splits, alpha {args.alpha}:")
    print("| inference | threshold | splits with a network | fraction (95 % CI) | units when "
          "declared (median, max) |")
    print("|---|---|---|---|---|")
    for inference, part in table.groupby("inference", sort=False):
        k, n = int(part["declared"].sum()), len(part)
        lo, hi = clopper_pearson(k, n)
        sizes = part.loc[part["declared"], "n_units"]
        sz = f"{int(sizes.median())}, {int(sizes.max())}" if len(sizes) else "-"
        print(f"| {inference} | {METHODS[inference]} <= {args.alpha} | {k} / {n} | "
              f"{k / n:.2f} ({lo:.2f}-{hi:.2f}) | {sz} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
