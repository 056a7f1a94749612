"""Benchmark the analysis after recording against the recording itself (run on demand).

Records a paradigm on the default model (``functional_networks`` by default: 3 runs,
17,280 ``resid_post`` units), then times, in the same process and one after the other:

1. the token-level first-level GLM (AR(1)) of every run;
2. prompt-level maps of the six tasks (one mean per prompt, second level);
3. permutation max-T maps of the six tasks, 1,000 permutations exchanging prompts;
4. overlap of the six prompt-level networks against 1,000 layer-matched random networks
   per pair;
5. repeatability (each run alone, Dice / r / ICC within vs across tasks);
6. identification of held-out blocks (leave one run out) with 1,000 permutations.

The target (issue 11): steps 1-6 together take no longer than the recording. Memory: the
peak of numpy allocations (``tracemalloc``) during each step, against the size of one run's
frames (float64), since the analysis should hold one run's frames plus O(n_units) per
permutation at most.

Usage::

    .venv/bin/python benchmarks/networks.py [--out runs/bench-networks] [--n-permutations 1000]

The recording is kept in ``--out`` (delete it to time the recording again). Results go in
benchmarks/RESULTS.md with the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
import tracemalloc


def timed(label, fn, rows):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows.append((label, seconds, peak / 2 ** 20))
    print(f"  {label:<58} {seconds:7.1f} s   peak {peak / 2 ** 20:7.0f} MiB", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paradigm", default=None, help="default: functional_networks")
    parser.add_argument("--out", default="runs/bench-networks")
    parser.add_argument("--n-permutations", type=int, default=1000)
    parser.add_argument("--rerecord", action="store_true", help="delete --out and record again")
    args = parser.parse_args(argv)

    import llmfmri as lf
    import llmfmri.networks as nw
    from llmfmri.decoding import identify
    from llmfmri.glm import FirstLevelGLM
    from llmfmri.main import default_paradigm, task_contrasts

    if args.rerecord and os.path.exists(args.out):
        shutil.rmtree(args.out)
    paradigm = lf.load_paradigm(args.paradigm or default_paradigm())
    contrasts = task_contrasts(paradigm)
    model = lf.load_model()
    t0 = time.perf_counter()
    rec = lf.record(model, paradigm, out=args.out, progress=False)
    t_rec = time.perf_counter() - t0
    n_frames = {r: rec.n_frames(r) for r in rec.runs}
    run_mib = max(n_frames.values()) * rec.units.n_units * 8 / 2 ** 20
    print(f"{platform.node()}: {os.cpu_count()} cores; {paradigm.name}: "
          f"{sum(n_frames.values())} frames x {rec.units.n_units} units in {len(rec.runs)} runs; "
          f"one run's frames in float64: {run_mib:.0f} MiB")
    print(f"  {'recording (record(), resumed runs excluded)':<58} {t_rec:7.1f} s")
    n = args.n_permutations
    rows = []
    timed("1. token-level GLM, AR(1), all runs", lambda: FirstLevelGLM().fit(rec), rows)
    maps = timed("2. prompt-level maps, 6 tasks",
                 lambda: nw.task_maps(rec, contrasts, inference="prompt"), rows)
    timed(f"3. permutation max-T maps, 6 tasks x {n} permutations",
          lambda: nw.task_maps(rec, contrasts, inference="permutation", n_permutations=n,
                               random_state=0), rows)
    nets = [nw.threshold(m, label=t) for t, m in maps.items()]
    timed(f"4. overlap tests, {len(nets) * (len(nets) - 1) // 2} pairs x {n} random networks",
          lambda: nw.overlap_test_matrix(nets, n_permutations=n, random_state=0), rows)
    timed("5. repeatability, each run alone",
          lambda: nw.repeatability(rec, contrasts, splits="runs"), rows)
    res = timed(f"6. identification, leave one run out, {n} permutations",
                lambda: identify(rec, contrasts, n_permutations=n, random_state=0), rows)
    total = sum(s for _, s, _ in rows)
    peak = max(m for _, _, m in rows)
    print(f"  {'analysis, steps 1-6':<58} {total:7.1f} s   peak {peak:7.0f} MiB")
    print(f"analysis / recording = {total / t_rec:.2f}; peak memory / one run's frames = "
          f"{peak / run_mib:.2f}; identification accuracy {res.accuracy:.3f} "
          f"(p = {res.p_value:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
