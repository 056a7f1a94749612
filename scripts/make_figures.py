"""Render one example of every figure of llmfmri.plotting (the PNGs of docs/figures.md).

From the real recording of the default model made by the main job
(``llmfmri run --out runs/demo``) and its ``runs/demo/analysis``; the null-calibration
figure reads ``runs/null/null_calibration.tsv`` (``scripts/null_calibration.py``) and the
lesion-effect figures ``runs/lesion/localizer/lesion-behaviour.tsv``
(``scripts/lesion_study.py``) and ``runs/weight_lesions/core/core-behaviour.tsv``
(``scripts/weight_lesion_study.py``) when they exist. Figures are small PNGs (dpi 100)::

    .venv/bin/python scripts/make_figures.py                 # writes docs/figures/*.png
    .venv/bin/python scripts/make_figures.py --overwrite     # replace them
    .venv/bin/python scripts/make_figures.py --report        # also runs/demo/analysis/report.html

Existing PNGs are refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _save(disp_or_fig, path, overwrite, dpi):
    import matplotlib.pyplot as plt

    fig = getattr(disp_or_fig, "figure_", disp_or_fig)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it.")
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", facecolor="white")
    tmp.replace(path)
    plt.close(fig)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _neuromfa_table(path):
    """The step, loss, alpha0, width and E(t) table of docs/results/neuromfa.md (or None)."""
    import re

    import pandas as pd

    if not path.exists():
        return None
    num = r"(-?[\d.]+)"
    row = re.compile(rf"^\| (\d+) \| [\d,]+ \| {num} \| {num} \| {num} \u00b1 {num} \| "
                     rf"{num} \u00b1 {num} \| \u2212?{num} \|$")
    rows = []
    for line in path.read_text().splitlines():
        m = row.match(line.strip())
        if m:
            step, train, val, a0, a0sd, w, wsd, e = (float(g) for g in m.groups())
            neg = "\u2212" in line.rsplit("|", 2)[1]
            rows.append({"step": int(step), "train_loss": train, "val_loss": val,
                         "alpha0": a0, "alpha0_sd": a0sd, "width": w, "width_sd": wsd,
                         "emergence": -e if neg else e})
    return pd.DataFrame(rows) if rows else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recording", default=str(ROOT / "runs" / "demo"))
    parser.add_argument("--null", default=str(ROOT / "runs" / "null" / "null_calibration.tsv"))
    parser.add_argument("--lesion", default=str(ROOT / "runs" / "lesion" / "localizer"
                                                / "lesion-behaviour.tsv"))
    parser.add_argument("--weight-lesion", default=str(ROOT / "runs" / "weight_lesions" / "core"
                                                       / "core-behaviour.tsv"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--task", default="medical_imaging",
                        help="the task whose map is drawn (default medical_imaging)")
    parser.add_argument("--dpi", type=int, default=100)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--report", action="store_true",
                        help="also write RECORDING/analysis/report.html")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import llmfmri.multifractal as mf
    import llmfmri.plotting as lp
    from llmfmri.design import make_design_matrix
    from llmfmri.recording import load_recording
    from llmfmri.reports import load_analysis, make_report

    t0 = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rec = load_recording(args.recording)
    a = load_analysis(Path(args.recording) / "analysis", recording=rec)
    if args.task not in a.maps:
        raise SystemExit(f"task {args.task!r} is not among the maps {sorted(a.maps)}")
    zmap, net = a.maps[args.task], a.networks[args.task]
    cut = float(np.floor(zmap.values[net.mask].min() * 100) / 100)
    title = f"{args.task}: {zmap.contrast}"

    def save(disp, name):
        _save(disp, out / name, args.overwrite, args.dpi)

    print(f"figures of {rec.path} ({a.summary.get('model')}) -> {out}")
    save(lp.plot_unit_map(zmap, threshold=cut, title=title), "unit_map.png")
    save(lp.plot_mosaic(zmap, threshold=cut, title=title), "mosaic.png")
    save(lp.plot_glass_network(zmap, threshold=cut, title=title), "glass_network.png")
    save(lp.plot_unit_map(zmap, threshold=50, title=title), "unit_map_empty.png")
    save(lp.plot_network_overlay({t: a.networks[t] for t in ("medical_imaging", "pathology")},
                                 title="medical_imaging and pathology networks"),
         "network_overlay.png")
    save(lp.plot_network_overlay(a.networks, title="six task networks"),
         "network_overlay_all.png")
    save(lp.plot_layer_profile(a.networks), "layer_profile.png")
    save(lp.plot_design_matrix(make_design_matrix(rec.events(1), n_frames=rec.n_frames(1)),
                               title="run 1: token-level design"), "design_matrix.png")
    save(lp.plot_overlap(a.tables["overlap"]), "overlap.png")
    ident = a.summary.get("identification", {})
    save(lp.ConfusionMatrixDisplay.from_frame(
        a.tables["identification-confusion"], accuracy=ident.get("accuracy"),
        chance=ident.get("chance"), p_value=ident.get("p_value")).plot(), "confusion.png")
    save(lp.plot_repeatability(a.tables["repeatability"]), "repeatability.png")
    picks = {}
    for task in ("medical_imaging", "random_strings"):
        col = int(np.argmax(a.maps[task].values))
        row = rec.units.table.iloc[col]
        picks[f"{task}: layer {row['layer']}, unit {row['index']}"] = col
    picks["medical_imaging network (mean)"] = a.networks["medical_imaging"]
    save(lp.plot_time_course(rec, picks, run=1, frames=400), "time_course.png")
    if Path(args.null).exists():
        save(lp.plot_null_calibration(args.null), "null_calibration.png")
    else:
        print(f"  (no {args.null}: the null-calibration figure is skipped)")
    for path, label, name in ((args.lesion, "language top 1 %", "lesion_effect.png"),
                              (args.weight_lesion, "core 1 % (weights)",
                               "lesion_effect_weights.png")):
        if Path(path).exists():
            save(lp.plot_lesion_effect(path, label=label), name)
        else:
            print(f"  (no {path}: {name} is skipped)")
    spectra = [mf.multifractal_spectrum(mf.make_power_law_network(
                   [1.5] * 30, n_neighbours=20000, random_state=0)),
               mf.multifractal_spectrum(mf.make_power_law_network([1.0] * 20 + [2.0] * 20))]
    save(lp.plot_spectra(spectra, labels=["one exponent, a = 1.5 (drawn)",
                                          "two exponents, a = 1 and 2"],
                         title="f(alpha) of synthetic power-law networks"), "spectra.png")
    table = _neuromfa_table(ROOT / "docs" / "results" / "neuromfa.md")
    if table is not None:
        save(lp.plot_emergence(table, title="NeuroMFA of a tiny LLaMA trained 2048 steps "
                                            "(docs/results/neuromfa.md)"), "emergence.png")
    from nilearn import plotting as nplt

    display = nplt.plot_stat_map(zmap.to_nifti(), bg_img=None, display_mode="z",
                                 cut_coords=[2, 8, 14, 20, 26], threshold=cut, annotate=False,
                                 title=f"{args.task} (nilearn, bg_img=None)")
    display.annotate(left_right=False, positions=True)  # slice = layer; no left or right
    _save(display.frame_axes.figure, out / "nilearn_stat_map.png", args.overwrite, args.dpi)
    if args.report:
        path = Path(args.recording) / "analysis" / "report.html"
        make_report(a.path, recording=rec).save(path, overwrite=args.overwrite)
        print(f"  {path}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
