"""``llmfmri sweep SWEEP.yaml --out DIR [--ray ADDRESS|auto] [--local]``: a grid of cells."""

NAME = "sweep"
HELP = "run a paradigm over a grid of models, revisions and seeds, then a group analysis"
DESCRIPTION = (
    "Run every cell of a sweep (a paradigm crossed with the axes of SWEEP.yaml: models, "
    "revisions, generation seeds) as a recording plus the main job's analysis, as Ray tasks "
    "(--ray ADDRESS, or auto) or one after another in this process (the default without Ray, "
    "or --local), with identical results. Complete cells are skipped, so a killed sweep resumes; "
    "a failing cell is reported and the others go on. Then gather every cell into "
    "OUT/sweep.tsv and run a group analysis per task with the cells as subjects "
    "(one-sample, and regressions on the axes named in group.regress), written to OUT/group/."
)
EPILOG = """\
exit status: 0 when every cell is complete, 1 when some failed (the others are written),
2 for an invalid sweep file or options. See docs/sweeps.md for the file and for clusters.
"""


def add_arguments(parser):
    parser.add_argument("sweep", metavar="SWEEP.yaml", help="sweep file")
    parser.add_argument("--out", required=True, help="output folder (shared storage for Ray)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--ray", metavar="ADDRESS", default=None,
                       help="run cells as Ray tasks: 'auto' (a running cluster), "
                            "'ray://host:10001', or 'local' (start one here)")
    where.add_argument("--local", action="store_true",
                       help="run cells one after another in this process (the default)")
    parser.add_argument("--n-permutations", type=int, default=1000,
                        help="permutations of the group tests (default 1000)")
    parser.add_argument("--overwrite", action="store_true",
                        help="run into a folder that holds another sweep")


def run(args):
    from ..sweeps import gather, group_analysis, load_sweep, run_sweep, save_sweep_tables

    sweep = load_sweep(args.sweep)
    executor = "ray" if args.ray else "local"
    address = None if args.ray in (None, "local") else args.ray
    result = run_sweep(sweep, args.out, executor=executor, address=address,
                       overwrite=args.overwrite, verbose=args.verbose)
    gathered = gather(args.out, sweep)
    groups = []
    n_complete = int((gathered.cells["status"] == "complete").sum())
    if n_complete >= 2:
        for task in gathered.tasks:
            groups.append(group_analysis(gathered, task, n_permutations=args.n_permutations))
            for axis in sweep.group.get("regress", []):
                if n_complete >= 3:
                    groups.append(group_analysis(gathered, task, regress=axis,
                                                 n_permutations=args.n_permutations))
    save_sweep_tables(gathered, groups)
    print(f"{len(result.statuses) - len(result.failed)} of {len(result.statuses)} cells "
          f"complete ({len(result.skipped)} already were) in {result.seconds:.0f} s with "
          f"{result.executor}; tables in {args.out}")
    for g in groups:
        s = g.summary
        print(f"  {s['task']:<20} {s['contrast']:<12} {s['n_cells']} cells: "
              f"{s['n_units_fdr']} units FDR<=0.05, {s['n_units_fwer']} FWER<=0.05")
    for status in result.statuses:
        if status.get("status") != "complete":
            print(f"  cell {status.get('cell')} failed: {status.get('error')}")
    return 1 if result.failed else 0
