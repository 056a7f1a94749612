"""``llmfmri validate FILE [FILE ...]``: check paradigm files and print their summaries."""

from __future__ import annotations

import sys

from ._errors import ParadigmError

__all__ = ["add_validate_parser", "run_validate"]

_HELP = "check paradigm files and print what each will present"
_DESCRIPTION = """\
Check one or more paradigm files (YAML) and print, for each valid one, its
conditions, prompts per condition per run, blocks and expected frames.
Problems are printed as FILE:LINE: FIELD: MESSAGE.

Exit status: 0 when every file is valid, 2 otherwise."""


def add_validate_parser(subparsers):
    """Add the ``validate`` command to an argparse ``subparsers`` object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The new sub-parser; its default ``func`` is :func:`run_validate`.
    """
    import argparse

    parser = subparsers.add_parser("validate", help=_HELP, description=_DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="paradigm YAML file(s), or names of paradigms in paradigms/")
    parser.add_argument("--seed", type=int, default=None,
                        help="schedule seed to summarise (default: the file's seed)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only 'FILE: valid' or the problems")
    parser.add_argument("--schedule", metavar="TSV", default=None,
                        help="also write the schedule of the (single) FILE to this TSV file")
    parser.set_defaults(func=run_validate)
    return parser


def run_validate(args):
    """Run ``llmfmri validate``.

    Parameters
    ----------
    args : argparse.Namespace
        With ``files`` (list of str) and optionally ``seed``, ``quiet``, ``schedule``.

    Returns
    -------
    int
        0 when every file is valid, 2 otherwise. Summaries go to stdout,
        problems to stderr, never as a traceback.
    """
    from ._paradigm import load_paradigm

    files = list(getattr(args, "files", []) or [])
    seed = getattr(args, "seed", None)
    quiet = bool(getattr(args, "quiet", False))
    schedule_out = getattr(args, "schedule", None)
    if schedule_out is not None and len(files) != 1:
        print("llmfmri validate: --schedule needs exactly one FILE, but got "
              f"{len(files)}.", file=sys.stderr)
        return 2
    status = 0
    for i, name in enumerate(files):
        try:
            paradigm = load_paradigm(name)
            if seed is not None and seed != paradigm.seed:
                path = paradigm.path
                paradigm = load_paradigm({**paradigm.to_dict(), "seed": seed})
                paradigm.path = path
            text = f"{name}: valid" if quiet else paradigm.summary()
            if schedule_out is not None:
                from .._utils import atomic_write_text

                table = paradigm.schedule()
                atomic_write_text(schedule_out, table.to_csv(sep="\t", index=False))
                text += f"\n  schedule      written to {schedule_out}"
        except ParadigmError as err:
            print(str(err), file=sys.stderr)
            status = 2
            continue
        except (OSError, ValueError) as err:
            print(f"{name}: {err}", file=sys.stderr)
            status = 2
            continue
        except Exception as err:  # a bug: still no traceback for the user
            print(f"{name}: internal error while validating ({type(err).__name__}: {err}); "
                  "this is a bug in llmfmri, please report it with the file.", file=sys.stderr)
            status = 2
            continue
        print(("" if i == 0 or quiet else "\n") + text)
    return status


def main(argv=None):
    """Stand-alone entry point: ``python -m llmfmri.paradigm._cli FILE ...``."""
    import argparse

    parser = argparse.ArgumentParser(prog="llmfmri")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
