"""``llmfmri sweep SWEEP.yaml --out DIR [--ray ADDRESS|auto] [--local]``: a grid of cells."""

NAME = "sweep"
HELP = "run a paradigm over a grid of models, revisions, seeds and lesions, then group analyses"
DESCRIPTION = (
    "Run every cell of a sweep (a paradigm crossed with the axes of SWEEP.yaml: models, "
    "revisions, generation seeds, lesions with their control draws, truncation grids) as a "
    "recording plus the main job's analysis and behaviour (steps), as Ray tasks "
    "(--ray ADDRESS, or auto) or one after another in this process (the default without Ray, "
    "or --local), with identical results. Complete cells are skipped, so a killed sweep resumes; "
    "a failing cell is reported and the others go on. Then gather every cell into "
    "OUT/sweep.tsv (and OUT/behaviour.tsv) and run a group analysis per task with the cells as "
    "subjects (one-sample, regressions on the axes named in group.regress, and with "
    "group.paired: lesion a paired test of lesioned - intact per lesion), written to "
    "OUT/group/, with each lesion's behaviour against its control draws in "
    "OUT/group/lesion-controls.tsv."
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
    from ..exceptions import DataError
    from ..sweeps import (compare_lesion_controls, gather, group_analysis, load_sweep, run_sweep,
                          save_sweep_tables)

    sweep = load_sweep(args.sweep)
    executor = "ray" if args.ray else "local"
    address = None if args.ray in (None, "local") else args.ray
    result = run_sweep(sweep, args.out, executor=executor, address=address,
                       overwrite=args.overwrite, verbose=args.verbose)
    gathered = gather(args.out, sweep)
    groups, notes = [], []
    complete = gathered.cells[gathered.cells["status"] == "complete"]
    # with a lesion axis, the cells-as-subjects tests take the intact cells (the lesion's
    # effects are the paired tests below): lesioned and intact cells are two conditions
    subjects = None
    if "lesion_role" in complete and (complete["lesion_role"] != "intact").any():
        subjects = complete.loc[complete["lesion_role"] == "intact", "cell"].tolist()
    n_complete = len(complete) if subjects is None else len(subjects)
    n_perm = args.n_permutations
    if n_complete >= 2:
        for task in gathered.tasks:
            groups.append(group_analysis(gathered, task, cells=subjects,
                                         n_permutations=n_perm))
            for axis in sweep.group.get("regress", []):
                if n_complete >= 3:
                    groups.append(group_analysis(gathered, task, regress=axis, cells=subjects,
                                                 n_permutations=n_perm))
    if sweep.group.get("paired") and gathered.tasks:
        cells = gathered.cells
        lesions = dict.fromkeys(cells.loc[cells["lesion_role"] == "lesion", "lesion"])
        for lesion in lesions:
            for task in gathered.tasks:
                try:
                    groups.append(group_analysis(gathered, task, paired=sweep.group["paired"],
                                                 lesion=lesion, n_permutations=n_perm))
                except DataError as exc:  # fewer than 2 complete pairs: said, not fatal
                    notes.append(f"  paired {lesion} - intact, {task}: skipped ({exc})")
    controls = compare_lesion_controls(gathered)
    save_sweep_tables(gathered, groups, controls=controls)
    print(f"{len(result.statuses) - len(result.failed)} of {len(result.statuses)} cells "
          f"complete ({len(result.skipped)} already were) in {result.seconds:.0f} s with "
          f"{result.executor}; tables in {args.out}")
    for g in groups:
        s = g.summary
        print(f"  {s['task']:<20} {g.name:<12} {s['n_cells']} "
              f"{'pairs' if g.paired else 'cells'}: {s['n_units_fdr']} units FDR<=0.05, "
              f"{s['n_units_fwer']} FWER<=0.05")
    for line in notes:
        print(line)
    if not controls.empty:
        print(f"  lesions against their control draws (behaviour): {len(controls)} comparisons "
              "in group/lesion-controls.tsv")
        others = [a for a in sweep.axes if a != "lesion" and a in controls
                  and controls[a].nunique() > 1]
        for row in controls.head(6).to_dict("records"):
            where = " ".join(f"{a}={row[a]}" for a in others)
            print(f"    {row['lesion']:<16} {where} {row['column']:<28} effect "
                  f"{row['effect']:+.4g}, controls {row['control_mean']:+.4g} "
                  f"(n={row['n_controls']}), p={row['p_empirical']:.3g}")
    for status in result.statuses:
        if status.get("status") != "complete":
            print(f"  cell {status.get('cell')} failed: {status.get('error')}")
    return 1 if result.failed else 0
