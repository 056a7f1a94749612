"""``llmfmri report DIR``: one self-contained HTML report of an analysis folder."""

NAME = "report"
HELP = "write a self-contained HTML report of an analysis (maps, networks, decoding...)"
DESCRIPTION = (
    "Write one HTML file that shows an analysis of `llmfmri run`: the paradigm, design "
    "matrices, each contrast's maps and top units by layer, the networks, their overlap, "
    "repeatability, decoding, time courses, and provenance (model, weights hash, versions, "
    "seeds). Figures are embedded and styles inline: the file makes no request of any kind. "
    "It reads maps and tables, not the recorded frames (the time courses read a few columns). "
    "Lesion studies found in DIR or below it (the *-behaviour.tsv and *-summary.tsv of "
    "`llmfmri lesion`) get a Lesions section: DIR may also be a lesion study's --out folder."
)
EPILOG = ("Examples:\n"
          "  llmfmri report runs/demo     (writes runs/demo/analysis/report.html)\n"
          "  llmfmri report runs/lesion   (a lesion study's folder: "
          "writes runs/lesion/report.html)")


def add_arguments(parser):
    parser.add_argument("analysis", metavar="DIR",
                        help="The analysis folder (OUT/analysis) or the recording folder OUT "
                             "of `llmfmri run`, or the --out folder of `llmfmri lesion`.")
    parser.add_argument("--out", "-o", default=None, metavar="FILE",
                        help="The HTML file to write (default DIR/analysis/report.html, or "
                             "DIR/report.html when DIR has no analysis folder).")
    parser.add_argument("--recording", default=None, metavar="REC",
                        help="The recording folder (default: the folder above the analysis).")
    parser.add_argument("--title", default=None, help="Title of the report.")
    parser.add_argument("--threshold", type=float, default=None,
                        help="Blank |z| below this in the maps (default: each network's cut).")
    parser.add_argument("--no-mosaic", action="store_true",
                        help="Leave out the slice mosaic of each map (a lighter report).")
    parser.add_argument("--max-frames", type=int, default=2000,
                        help="Frames of the time-course figure (0: none; default 2000).")
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing report.")


def run(args):
    """Make the report and print its path; raise on failure (exit codes by llmfmri.cli)."""
    from pathlib import Path

    from ..recording import load_recording
    from ..reports import default_report_path, make_report

    default = default_report_path(args.analysis)  # DIR/report.html or DIR/analysis/report.html
    analysis = default.parent
    out = Path(args.out) if args.out else default
    if out.exists() and not args.overwrite:  # refuse before the (longer) work
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it.")
    recording = args.recording
    if recording is None and (analysis.parent / "recording.json").exists():
        recording = analysis.parent  # the main job's layout: OUT/analysis next to the recording
    report = make_report(analysis, title=args.title,
                         recording=None if recording is None else load_recording(recording),
                         threshold=args.threshold, mosaic=not args.no_mosaic,
                         max_frames=args.max_frames, verbose=args.verbose)
    path = report.save(out, overwrite=args.overwrite)
    print(f"report: {path}")
    return 0
