"""``llmfmri validate FILE [FILE ...]``: check paradigm (or sweep) files and print summaries."""

import sys

NAME = "validate"
HELP = "check paradigm files and print what each will present"
DESCRIPTION = """\
Check one or more paradigm files (YAML) and print, for each valid one, its
conditions, prompts per condition per run, blocks and expected frames.
Problems are printed as FILE:LINE: FIELD: MESSAGE. A sweep file (a mapping
with 'axes' and no 'conditions', see docs/sweeps.md) is checked as a sweep and
its cells are listed.

With -q, print only 'FILE: valid' or the problems.

Exit status: 0 when every file is valid, 2 otherwise."""


def add_arguments(parser):
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="paradigm or sweep YAML file(s), or names of paradigms in "
                             "paradigms/")
    parser.add_argument("--seed", type=int, default=None,
                        help="schedule seed to summarise (default: the file's seed)")
    parser.add_argument("--schedule", metavar="TSV", default=None,
                        help="also write the schedule of the (single) FILE to this TSV file")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --schedule file")


def run(args):
    """Validate every file; problems go to stderr, summaries to stdout; 0 or 2."""
    from ..exceptions import ParadigmError
    from ..io import write_tsv
    from ..paradigm import load_paradigm

    files = list(args.files)
    if args.schedule is not None and len(files) != 1:
        raise ValueError(f"--schedule needs exactly one FILE, but got {len(files)}.")
    brief = args.verbose <= 0
    status = 0
    for i, name in enumerate(files):
        if _is_sweep(name):
            status = max(status, _validate_sweep(name, brief, first=i == 0))
            continue
        try:
            paradigm = load_paradigm(name)
            if args.seed is not None and args.seed != paradigm.seed:
                path = paradigm.path
                paradigm = load_paradigm({**paradigm.to_dict(), "seed": args.seed})
                paradigm.path = path
            text = f"{name}: valid" if brief else paradigm.summary()
            if args.schedule is not None:
                write_tsv(paradigm.schedule(), args.schedule, overwrite=args.overwrite)
                text += f"\n  schedule      written to {args.schedule}"
        except ParadigmError as err:
            print(str(err), file=sys.stderr)
            status = 2
            continue
        except (OSError, ValueError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            status = 2
            continue
        print(("" if i == 0 or brief else "\n") + text)
    return status


def _is_sweep(name):
    """Whether ``name`` is a YAML file holding a sweep (``axes``, no ``conditions``)."""
    from pathlib import Path

    path = Path(name)
    if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "axes" in data and "conditions" not in data


def _validate_sweep(name, brief, *, first):
    from ..exceptions import SweepError
    from ..sweeps import load_sweep

    try:
        sweep = load_sweep(name)
    except SweepError as err:
        print(str(err), file=sys.stderr)
        return 2
    cells = sweep.cells()
    if brief:
        print(f"{name}: valid sweep ({len(cells)} cells)")
    else:
        print(("" if first else "\n") + f"{name}: valid sweep {sweep.name!r}: paradigm "
              f"{sweep.paradigm}, steps {list(sweep.steps)}, {len(cells)} cells:\n  "
              + "\n  ".join(c.label for c in cells))
    return 0
