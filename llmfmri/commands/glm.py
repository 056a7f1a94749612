"""``llmfmri glm DIR --contrast EXPR ...``: fit a first-level GLM and write contrast maps."""

NAME = "glm"
HELP = "fit a first-level GLM to a recording and write contrast maps"
DESCRIPTION = (
    "Fit a first-level GLM (boxcar regressors, drift, AR(1) noise by default) to every run of "
    "a recording and write, for each contrast, z, t (or F), effect, variance and p maps as "
    "NIfTI (with intent codes) plus a tidy TSV with one row per unit (site, layer, index). "
    "These token-level maps are a fixed effect of the presented prompts; `llmfmri run` "
    "defines networks with inference that generalises over prompts."
)


def add_arguments(parser):
    parser.add_argument("recording", metavar="DIR", help="Recording directory.")
    parser.add_argument("--contrast", "-c", action="append", required=True, metavar="EXPR",
                        help="Contrast over design columns, e.g. 'medical_imaging - control', "
                             "or LABEL=EXPR to name its files. Repeat for several; separate "
                             "rows with ';' for an F test.")
    parser.add_argument("--noise-model", choices=["ar1", "ols"], default="ar1")
    parser.add_argument("--hrf-model", default=None,
                        help="None (boxcar, default) or a nilearn HRF such as 'spm'.")
    parser.add_argument("--drift-model", choices=["polynomial", "cosine", "none"],
                        default="polynomial")
    parser.add_argument("--drift-order", type=int, default=1)
    parser.add_argument("--high-pass", type=float, default=0.01,
                        help="Cosine drift cut-off in cycles per frame.")
    parser.add_argument("--confounds", default=None,
                        help="Comma-separated events columns, e.g. 'position,logprob'.")
    parser.add_argument("--conditions", default=None,
                        help="Comma-separated trial types to model (default: all).")
    parser.add_argument("--bins", type=int, default=None,
                        help="Bin AR(1) coefficients as nilearn (e.g. 100); exact per unit by "
                             "default.")
    parser.add_argument("--runs", default=None, help="Comma-separated run labels (default: all).")
    parser.add_argument("--sites", default=None, help="Comma-separated sites to analyse.")
    parser.add_argument("--layers", default=None, help="Comma-separated layers to analyse.")
    parser.add_argument("--correction", choices=["fdr", "bonferroni"], default="fdr",
                        help="Adds a corrected p column to the TSV (default fdr).")
    parser.add_argument("--out", "-o", default=None,
                        help="Output folder (default DIR/derivatives/glm).")
    parser.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")


def _split(text, cast=str):
    if text is None:
        return None
    return [cast(t.strip()) for t in text.split(",") if t.strip()]


def _load_recording(path):
    from ..recording import load_recording

    return load_recording(path)


def parse_contrasts(values):
    """``["a - b", "lab=a; b"]`` → list of definitions, or a dict ``{label: definition}``.

    Raises ``OutputNameError`` when two contrasts would share a label.
    """
    import re

    defs, labels = [], []
    for text in values:
        label = None
        m = re.fullmatch(r"\s*([A-Za-z0-9]+)\s*=(?!=)(.*)", text)
        if m:
            label, text = m.group(1), m.group(2)
        rows = [r.strip() for r in text.split(";") if r.strip()]
        if not rows:
            raise ValueError(f"--contrast {text!r} is empty; give an expression such as 'a - b'.")
        defs.append(rows[0] if len(rows) == 1 else rows)
        labels.append(label)
    if any(lab is not None for lab in labels):
        from ..io import check_unique_labels

        texts = ["; ".join(d) if isinstance(d, list) else d for d in defs]
        named = check_unique_labels(texts, labels=labels)
        return {named[text]: d for text, d in zip(texts, defs)}
    return defs


def run(args):
    from pathlib import Path

    import numpy as np

    from ..glm import FirstLevelGLM, save_glm_to_bids

    rec = _load_recording(args.recording)
    if args.sites or args.layers:
        cols = rec.units.select(sites=_split(args.sites), layers=_split(args.layers, int))
        rec = rec.subset(np.sort(cols))
    out = Path(args.out) if args.out else Path(args.recording) / "derivatives" / "glm"
    contrasts = parse_contrasts(args.contrast)
    glm = FirstLevelGLM(
        noise_model=args.noise_model,
        hrf_model=None if args.hrf_model in (None, "none", "None") else args.hrf_model,
        drift_model=None if args.drift_model == "none" else args.drift_model,
        drift_order=args.drift_order, high_pass=args.high_pass,
        conditions=_split(args.conditions), confounds=_split(args.confounds), bins=args.bins,
        verbose=args.verbose,
    )
    glm.fit(rec, runs=_split(args.runs, int))
    written = save_glm_to_bids(glm, contrasts, out, task=getattr(rec, "task", None),
                               correction=args.correction, overwrite=args.overwrite,
                               provenance={"recording": str(args.recording)})
    print(f"Wrote {len(written)} maps and tables to {out}")
    return 0
