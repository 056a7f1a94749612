"""``llmfmri glm DIR --contrast EXPR ...``: fit a first-level GLM and write z, t, effect maps."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from .._utils import atomic_write_json, atomic_write_text, logger

__all__ = ["add_glm_parser", "run_glm_command", "contrast_slug"]


def contrast_slug(expression):
    """A BIDS-safe label for a contrast expression.

    ``"medical_imaging - control"`` becomes ``medicalImagingMinusControl``.

    Examples
    --------
    >>> contrast_slug("medical_imaging - control")
    'medicalImagingMinusControl'
    >>> contrast_slug("a; b")
    'aAndB'
    """
    s = (expression.replace(";", " and ").replace("-", " minus ").replace("+", " plus ")
         .replace("*", " times ").replace("/", " over "))
    words = re.findall(r"[A-Za-z0-9]+", s)
    if not words:
        return "contrast"
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def add_glm_parser(subparsers):
    """Add the ``glm`` sub-command to an ``argparse`` sub-parsers object; return its parser."""
    p = subparsers.add_parser(
        "glm",
        help="Fit a first-level GLM to a recording and write contrast maps.",
        description=(
            "Fit a first-level GLM (boxcar regressors, drift, AR(1) noise by default) to "
            "every run of a recording and write, for each contrast, z, t (or F), effect, "
            "variance and p maps as NIfTI (with intent codes) plus a tidy TSV with one row "
            "per unit (site, layer, index)."
        ),
    )
    p.add_argument("recording", metavar="DIR", help="Recording directory.")
    p.add_argument("--contrast", "-c", action="append", required=True, metavar="EXPR",
                   help="Contrast over design columns, e.g. 'medical_imaging - control'. "
                        "Repeat for several; separate rows with ';' for an F test.")
    p.add_argument("--noise-model", choices=["ar1", "ols"], default="ar1")
    p.add_argument("--hrf-model", default=None,
                   help="None (boxcar, default) or a nilearn HRF such as 'spm'.")
    p.add_argument("--drift-model", choices=["polynomial", "cosine", "none"],
                   default="polynomial")
    p.add_argument("--drift-order", type=int, default=1)
    p.add_argument("--high-pass", type=float, default=0.01,
                   help="Cosine drift cut-off in cycles per frame.")
    p.add_argument("--confounds", default=None,
                   help="Comma-separated events columns, e.g. 'position,logprob'.")
    p.add_argument("--conditions", default=None,
                   help="Comma-separated trial types to model (default: all).")
    p.add_argument("--bins", type=int, default=None,
                   help="Bin AR(1) coefficients as nilearn (e.g. 100); exact per unit by default.")
    p.add_argument("--runs", default=None, help="Comma-separated run labels (default: all).")
    p.add_argument("--sites", default=None, help="Comma-separated sites to analyse.")
    p.add_argument("--layers", default=None, help="Comma-separated layers to analyse.")
    p.add_argument("--correction", choices=["fdr", "bonferroni"], default="fdr",
                   help="Adds a corrected p column to the TSV (default fdr).")
    p.add_argument("--out", "-o", default=None,
                   help="Output folder (default DIR/derivatives/glm).")
    p.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    return p


def _split(text, cast=str):
    if text is None:
        return None
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def _load_recording(path):
    from ..recording._reader import load_recording

    return load_recording(path)


class _ColumnView:
    """Lazy view of some columns of an (n_frames, n_units) array, sliceable as ``[:, a:b]``."""

    def __init__(self, array, columns):
        self.array = array
        self.columns = np.asarray(columns, dtype=np.int64)
        self.shape = (int(array.shape[0]), int(self.columns.size))
        self.chunks = getattr(array, "chunks", None)

    def __getitem__(self, key):
        rows, cols = key
        sel = self.columns[cols]
        lo, hi = int(sel.min()), int(sel.max()) + 1
        block = np.asarray(self.array[rows, lo:hi])
        return block[:, sel - lo]


class _Subset:
    """A Recording restricted to some units."""

    def __init__(self, rec, columns):
        self._rec = rec
        self._columns = columns
        self.units = rec.units.subset(columns)
        self.runs = rec.runs
        self.task = getattr(rec, "task", None)

    def frames(self, run):
        return _ColumnView(self._rec.frames(run), self._columns)

    def events(self, run):
        return self._rec.events(run)

    def n_frames(self, run):
        return self._rec.n_frames(run)


def run_glm_command(args):
    """Run ``llmfmri glm``; returns the exit status (0 on success)."""
    from ._correct import correct
    from ._first_level import FirstLevelGLM, contrast_to_maps

    try:
        rec = _load_recording(args.recording)
        if args.sites or args.layers:
            cols = rec.units.select(sites=_split(args.sites), layers=_split(args.layers, int))
            rec = _Subset(rec, np.sort(cols))
        out = Path(args.out) if args.out else Path(args.recording) / "derivatives" / "glm"
        glm = FirstLevelGLM(
            noise_model=args.noise_model,
            hrf_model=None if args.hrf_model in (None, "none", "None") else args.hrf_model,
            drift_model=None if args.drift_model == "none" else args.drift_model,
            drift_order=args.drift_order, high_pass=args.high_pass,
            conditions=_split(args.conditions), confounds=_split(args.confounds),
            bins=args.bins,
        )
        runs = _split(args.runs, int)
        glm.fit(rec, runs=runs)
        task = getattr(rec, "task", None)
        prefix = f"task-{contrast_slug(task)}_" if task else ""
        written = []
        plan = []
        for expr in args.contrast:
            rows = [r.strip() for r in expr.split(";") if r.strip()]
            cdef = rows[0] if len(rows) == 1 else rows
            con = glm.contrast(cdef)
            maps = contrast_to_maps(con, glm.units_, "all")
            if con.stat_type == "t":
                maps["p_two_sided"] = con.p_value(two_sided=True)
            plan.append((expr, contrast_slug(expr), maps))
        # check every target before writing anything
        targets = []
        for expr, slug, maps in plan:
            stat_label = "t" if maps["stat"].stat_type == "t" else "F"
            base = out / f"{prefix}contrast-{slug}"
            files = {
                "z_score": Path(f"{base}_stat-z_statmap.nii.gz"),
                "stat": Path(f"{base}_stat-{stat_label}_statmap.nii.gz"),
                "effect_size": Path(f"{base}_stat-effect_statmap.nii.gz"),
                "effect_variance": Path(f"{base}_stat-variance_statmap.nii.gz"),
                "p_value": Path(f"{base}_stat-p_statmap.nii.gz"),
            }
            tsv = Path(f"{base}_statmap.tsv")
            sidecar = Path(f"{base}_statmap.json")
            targets.append((expr, maps, files, tsv, sidecar))
            if not args.overwrite:
                existing = [str(f) for f in list(files.values()) + [tsv, sidecar] if f.exists()]
                if existing:
                    raise FileExistsError(
                        f"{existing[0]} already exists; pass --overwrite to replace it."
                    )
        designs = {out / f"{prefix}run-{glm.runs_[k]}_design.tsv":
                   dm.to_csv(sep="\t", float_format="%.9g")
                   for k, dm in enumerate(glm.design_matrices_)}
        for path, text in designs.items():
            if path.exists() and not args.overwrite and path.read_text() != text:
                raise FileExistsError(
                    f"{path} already exists with a different design; pass --overwrite or "
                    "choose another --out."
                )
        for expr, maps, files, tsv, sidecar in targets:
            for kind, path in files.items():
                maps[kind].to_nifti(path, overwrite=True)
                written.append(path)
            df = maps["z_score"].to_frame("z")
            if maps["effect_size"].values.ndim == 1:
                df["effect"] = maps["effect_size"].values
                df["variance"] = maps["effect_variance"].values
            df[maps["stat"].stat_type] = maps["stat"].values
            df["p"] = maps["p_value"].values
            if maps["stat"].stat_type == "t":
                df["p_two_sided"] = maps["p_two_sided"]
                df[f"p_{args.correction}"] = correct(df["p_two_sided"].to_numpy(),
                                                     args.correction)
            else:
                df[f"p_{args.correction}"] = correct(df["p"].to_numpy(), args.correction)
            df.insert(0, "contrast", expr)
            atomic_write_text(tsv, df.to_csv(sep="\t", index=False, float_format="%.9g"))
            written.append(tsv)
            atomic_write_json(sidecar, {
                "contrast": expr, "stat_type": maps["stat"].stat_type,
                "dof": maps["stat"].dof, "recording": str(args.recording),
                "runs": [int(r) for r in glm.runs_], "noise_model": glm.noise_model,
                "hrf_model": glm.hrf_model, "drift_model": glm.drift_model,
                "drift_order": glm.drift_order, "confounds": glm.confounds, "bins": glm.bins,
                "first_frame": glm.first_frame,
                "design_columns": [list(map(str, d.columns)) for d in glm.design_matrices_],
                "p": "one-sided (upper tail) for t; p_two_sided and the corrected p are two-sided",
            })
            written.append(sidecar)
        for path, text in designs.items():
            atomic_write_text(path, text)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as exc:
        print(f"llmfmri glm: error: {exc}", file=sys.stderr)
        return 1
    logger.info("llmfmri glm: wrote %d files to %s", len(written), out)
    print(f"Wrote {len(written)} maps and tables to {out}")
    return 0
