"""``llmfmri validate FILE [FILE ...]``: check paradigm files and print their summaries."""

import sys

NAME = "validate"
HELP = "check paradigm files and print what each will present"
DESCRIPTION = """\
Check one or more paradigm files (YAML) and print, for each valid one, its
conditions, prompts per condition per run, blocks and expected frames.
Problems are printed as FILE:LINE: FIELD: MESSAGE.

With -q, print only 'FILE: valid' or the problems.

Exit status: 0 when every file is valid, 2 otherwise."""


def add_arguments(parser):
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="paradigm YAML file(s), or names of paradigms in paradigms/")
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
