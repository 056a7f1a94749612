"""Benchmark the GLM fast path against nilearn's run_glm and a per-unit statsmodels loop.

Cases (issue 5): 2,000 frames x 100,000 units and 600 x 9,216 (12 layers x 768, the
seed paper's Galactica-125m), OLS and AR(1), float64 arrays in memory; plus one
on-disk zarr array larger than the memory the fitting process may use (an
address-space limit set with ``resource.setrlimit``), read chunk by chunk.

For each case it reports wall time (best of ``--repeat``), the time of one pass
over the same array (``Y.sum(axis=0)``, best of the passes timed right before
each of our fits, so both see the same machine load), peak extra memory of the fit
(``tracemalloc``, numpy allocations), the largest relative difference of t to
nilearn (AR(1): ``bins=100, bias_correction=False``, nilearn's estimator) and to
statsmodels on a sample of units, and the statsmodels time extrapolated from
that sample. nilearn is compared on the same cores: ours single-threaded
against nilearn with BLAS limited to one thread, and ours with ``--n-jobs``
threads against nilearn with its default BLAS threads.

Usage::

    python benchmarks/glm.py                      # full sizes (about 5 minutes, 8 GB RAM)
    python benchmarks/glm.py --scale 0.1          # units scaled down
    python benchmarks/glm.py --out-of-core-gb 4   # the on-disk case (0 to skip)
    python benchmarks/glm.py --json results.json

Analysis code only: no torch, no matplotlib.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from llmfmri.design import make_design_matrix
from llmfmri.glm import run_glm


def design(n_frames, block=20):
    n_blocks = -(-n_frames // block)
    labels = np.array(["task", "control"])[np.arange(n_blocks) % 2]
    ev = pd.DataFrame({"onset": np.arange(n_frames), "duration": 1,
                       "trial_type": np.repeat(labels, block)[:n_frames],
                       "position": np.arange(n_frames) % block})
    return make_design_matrix(ev, n_frames, drift_order=3, confounds=["position"])


def token_like(rng, n, u, dtype=np.float64, rho=0.5):
    """AR(rho) noise with unit-specific scales and offsets (like residual-stream units)."""
    from scipy.signal import lfilter

    Y = np.empty((n, u), dtype=dtype)
    step = 8192
    for a in range(0, u, step):
        b = min(a + step, u)
        e = rng.standard_normal((n + 20, b - a))
        block = lfilter([1.0], [1.0, -rho], e, axis=0)[20:]
        block *= rng.lognormal(0, 1, b - a)
        block += rng.normal(0, 5, b - a)
        Y[:, a:b] = block
    return Y


def best(fn, repeat, passes=None, Y=None):
    """Best wall time of ``fn`` over ``repeat`` calls.

    With ``passes`` (a list) and ``Y``, one pass over ``Y`` (``Y.sum(axis=0)``)
    is timed right before each call and appended to ``passes``, so the
    reference pass is measured under the same machine load as the fits.
    """
    times = []
    out = None
    for _ in range(repeat):
        gc.collect()
        if passes is not None:
            t0 = time.perf_counter()
            Y.sum(axis=0)
            passes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def peak_memory(fn):
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def max_rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def nilearn_t(Y, X, noise_model, contrast):
    from nilearn.glm.contrasts import compute_contrast
    from nilearn.glm.first_level import run_glm as nl_run_glm

    labels, results = nl_run_glm(Y, X.to_numpy(), noise_model=noise_model, bins=100)
    return compute_contrast(labels, results, contrast, "t").stat()


def statsmodels_t(Y, X, noise_model, contrast, columns, rho=None):
    """Per-unit statsmodels loop (BLAS single-threaded: faster for these tiny problems)."""
    import statsmodels.api as sm

    Xa = X.to_numpy()
    out = []
    with threadpool_limits(1, user_api="blas"):
        for k, j in enumerate(columns):
            out.append(_sm_one(sm, Y[:, j], Xa, noise_model, contrast,
                               None if rho is None else rho[k]))
    return np.array(out)


def _sm_one(sm, y, Xa, noise_model, contrast, rho):
    if noise_model == "ols":
        return sm.OLS(y, Xa).fit().t_test(contrast).tvalue[0, 0]
    return sm.GLSAR(y, Xa, rho=float(rho)).fit().t_test(contrast).tvalue[0, 0]


def run_case(n, u, args, rng):
    print(f"\n== {n} frames x {u} units (float64, {n * u * 8 / 2 ** 30:.2f} GiB)", flush=True)
    X = design(n)
    c = np.array([1.0 if k == "task" else -1.0 if k == "control" else 0.0 for k in X.columns])
    Y = token_like(rng, n, u)
    rows = []
    # nilearn is timed as often as ours where that is cheap (best of the same number)
    nl_repeat = args.repeat if Y.nbytes <= 2 ** 28 else 1
    for noise_model in ("ols", "ar1"):
        kw = dict(noise_model=noise_model)
        nl_kw = dict(kw, bins=100, bias_correction=False) if noise_model == "ar1" else kw
        passes = []
        t_ours, res = best(lambda: run_glm(Y, X, **kw), args.repeat, passes, Y)
        t_ours_jobs, _ = best(lambda: run_glm(Y, X, n_jobs=args.n_jobs, **kw), args.repeat,
                              passes, Y)
        t_pass = min(passes)
        t_ours_nl, res_nl = best(lambda: run_glm(Y, X, **nl_kw), args.repeat)
        mem_ours = peak_memory(lambda: run_glm(Y, X, **kw))
        row = dict(case=f"{n} x {u}", noise_model=noise_model, ours_s=t_ours,
                   ours_n_jobs_s=t_ours_jobs, ours_nilearn_mode_s=t_ours_nl, one_pass_s=t_pass,
                   ratio_to_pass=t_ours / t_pass, ratio_to_pass_n_jobs=t_ours_jobs / t_pass,
                   ours_peak_mib=mem_ours / 2 ** 20, data_mib=Y.nbytes / 2 ** 20)
        if not args.no_nilearn:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t_nl, nl_t = best(lambda: nilearn_t(Y, X, noise_model, c), nl_repeat)
                with threadpool_limits(1, user_api="blas"):
                    t_nl1, _ = best(lambda: nilearn_t(Y, X, noise_model, c), nl_repeat)
                mem_nl = peak_memory(lambda: nilearn_t(Y, X, noise_model, c))
            t_ours_nl_jobs, _ = best(lambda: run_glm(Y, X, n_jobs=args.n_jobs, **nl_kw),
                                     args.repeat)
            ours_t = res_nl.contrast(c).stat()
            # same cores on both sides: ours single-threaded against nilearn with BLAS on
            # one thread, and ours with n_jobs threads against nilearn's default BLAS threads
            row.update(nilearn_s=t_nl, nilearn_1thread_s=t_nl1,
                       ours_nilearn_mode_n_jobs_s=t_ours_nl_jobs,
                       speedup_vs_nilearn_1thread=t_nl1 / t_ours_nl,
                       speedup_vs_nilearn=t_nl / t_ours_nl_jobs,
                       nilearn_peak_mib=mem_nl / 2 ** 20,
                       max_rel_diff_t_nilearn=max_rel(ours_t, nl_t))
        cols = rng.choice(u, size=min(args.sm_units, u), replace=False)
        fixed = run_glm(Y, X, noise_model=noise_model, first_frame="drop",
                        **({} if noise_model == "ols" else dict(bins=100, bias_correction=False)))
        t_sm, sm_t = best(lambda: statsmodels_t(Y, X, noise_model, c, cols,
                                                None if fixed.rho is None else fixed.rho[cols]), 1)
        row.update(statsmodels_s_extrapolated=t_sm / cols.size * u,
                   speedup_vs_statsmodels=t_sm / cols.size * u / t_ours,
                   max_rel_diff_t_statsmodels=max_rel(fixed.contrast(c).stat()[cols], sm_t))
        rows.append(row)
        print(json.dumps({k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                          for k, v in row.items()}), flush=True)
    Y = None  # free the array before the next case
    gc.collect()
    return rows


_CHILD = r"""
import json, resource, sys, time
import numpy as np, zarr
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.path.insert(0, sys.argv[3])
from benchmarks_glm_child import design  # noqa
from llmfmri.glm import run_glm
z = zarr.open_array(sys.argv[1], mode="r")
X = design(z.shape[0])
out = {}
for nm in ("ols", "ar1"):
    t0 = time.perf_counter()
    res = run_glm(z, X, noise_model=nm)
    out[nm + "_s"] = time.perf_counter() - t0
    out[nm + "_finite"] = bool(np.isfinite(res.contrast("task - control").z_score()).all())
    del res
t0 = time.perf_counter()
for a in range(0, z.shape[1], z.chunks[1]):
    np.asarray(z[:, a:a + z.chunks[1]]).sum(axis=0)
out["one_pass_s"] = time.perf_counter() - t0
# VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's over exec)
with open("/proc/self/status") as fh:
    hwm = [line for line in fh if line.startswith("VmHWM")][0]
out["peak_rss_mib"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def out_of_core(args, rng):
    import zarr

    n = 4000
    u = int(args.out_of_core_gb * 2 ** 30 / (n * 4))
    u = max(8192, u - u % 8192)
    limit = int(args.memory_limit_gb * 2 ** 30)
    print(f"\n== on disk: {n} frames x {u} units float32 = {n * u * 4 / 2 ** 30:.2f} GiB, "
          f"fitting process limited to {args.memory_limit_gb} GiB of address space", flush=True)
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = os.path.join(tmp, "bold.zarr")
        z = zarr.create_array(path, shape=(n, u), chunks=(256, 8192), dtype="float32",
                              compressors=None)
        t0 = time.perf_counter()
        for a in range(0, u, 8192):
            z[:, a:a + 8192] = token_like(rng, n, 8192, dtype=np.float32)
        write_s = time.perf_counter() - t0
        # the child imports `design` from a copy of this module's helpers
        helper = os.path.join(tmp, "benchmarks_glm_child.py")
        with open(__file__) as src, open(helper, "w") as dst:
            dst.write(src.read().split("\n_CHILD = ")[0])
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-c", _CHILD, path, str(limit), tmp],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            raise SystemExit("out-of-core child failed")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(case=f"{n} x {u} on disk", data_gib=n * u * 4 / 2 ** 30,
               memory_limit_gib=args.memory_limit_gb, write_s=write_s)
    print(json.dumps(res), flush=True)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiply unit counts (e.g. 0.1)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--n-jobs", type=int, default=2, help="threads for the second timing")
    p.add_argument("--sm-units", type=int, default=300,
                   help="units fitted by the statsmodels loop (time extrapolated)")
    p.add_argument("--no-nilearn", action="store_true")
    p.add_argument("--out-of-core-gb", type=float, default=4.0, help="0 to skip")
    p.add_argument("--memory-limit-gb", type=float, default=2.0)
    p.add_argument("--tmpdir", default=None)
    p.add_argument("--cases", default="2000x100000,600x9216")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    info = dict(python=platform.python_version(), numpy=np.__version__,
                machine=platform.machine(), cpus=os.cpu_count(),
                load_avg=os.getloadavg()[0], scale=args.scale, n_jobs=args.n_jobs)
    print(json.dumps(info))
    rows = []
    for case in filter(None, args.cases.split(",")):
        n, u = (int(v) for v in case.split("x"))
        rows += run_case(n, max(64, int(u * args.scale)), args, rng)
    ooc = out_of_core(args, rng) if args.out_of_core_gb > 0 else None
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(info=info, cases=rows, out_of_core=ooc), fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
