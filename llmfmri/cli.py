"""The ``llmfmri`` command and its subcommands (``run``, ``record``, ``glm``, ``lesion``...).

Every command lives in :mod:`llmfmri.commands` and is registered the same way
(see that module for how to add one). :func:`main` alone turns exceptions into
messages and exit codes: 0 success, 2 bad input or usage, 1 a failure while
running, 130 interrupted. ``-v``/``-q`` are accepted before or after the
command; ``-vv`` also shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shlex
import sys

from ._utils import did_you_mean, set_verbose
from ._version import __version__
from .commands import COMMANDS

__all__ = ["main", "build_parser", "exit_code"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: exceptions that mean "the input or the usage was wrong" (exit 2); the package's own
#: input errors subclass these (see llmfmri.exceptions)
_USAGE_ERRORS = (ValueError, TypeError, LookupError, FileNotFoundError, FileExistsError,
                 NotADirectoryError, IsADirectoryError)


def exit_code(exc):
    """The exit code for an exception: 130 interrupted, 2 bad input or usage, 1 otherwise."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, SystemExit):
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT_USAGE
    if isinstance(exc, _USAGE_ERRORS):
        return EXIT_USAGE
    return EXIT_FAILURE


def _verbosity_options(parser, defaults):
    kw = {} if defaults else {"default": argparse.SUPPRESS}
    parser.add_argument("-v", "--verbose", action="count",
                        help="more output (-v: debug messages; -vv: also tracebacks)",
                        **({"default": 0} if defaults else kw))
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="warnings and errors only", **({"default": False} if defaults else kw))


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised (exit code 2 through :func:`main`)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def build_parser():
    """The argument parser of ``llmfmri`` with every command of :data:`COMMANDS`."""
    parser = _Parser(prog="llmfmri",
                     description="Study LLMs the way cognitive neuroscience studies brains.",
                     epilog="Exit status: 0 success, 1 failure while running, 2 bad input or "
                            "usage, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"llmfmri {__version__}")
    _verbosity_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"llmfmri.commands.{name}")
        # no abbreviations: `--layer` must not silently mean `--layers` (or a later option)
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.DESCRIPTION,
                           epilog=getattr(module, "EPILOG", None), allow_abbrev=False,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        _verbosity_options(p, defaults=False)
        p.set_defaults(func=module.run)
    return parser


def _unrecognized(parser, args, extra):
    """Report unknown arguments as the command's own error, with a did-you-mean."""
    sub = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None)) \
        if parser._subparsers is not None else None
    target = sub or parser
    options = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
    hint = ""
    for item in extra:
        if item.startswith("--"):
            hint = did_you_mean(item.split("=", 1)[0], options)
            if hint:
                break
    target.error(f"unrecognized arguments: {' '.join(extra)}.{hint}")


def main(argv=None):
    """Entry point of the ``llmfmri`` console script; returns the exit code."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            _unrecognized(parser, args, extra)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exit_code(exc)
    args.verbose = 0 if args.quiet else 1 + int(args.verbose)
    args.command_line = shlex.join(["llmfmri", *(sys.argv[1:] if argv is None else argv)])
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    previous = logging.getLogger("llmfmri").level
    set_verbose(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"llmfmri {args.command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message and a code
        if args.verbose >= 3:
            raise
        code = exit_code(exc)
        kind = "" if code == EXIT_USAGE or type(exc).__module__.startswith("llmfmri") \
            else f"{type(exc).__name__}: "
        print(f"llmfmri {args.command}: error: {kind}{exc}", file=sys.stderr)
        if code == EXIT_FAILURE:
            print("  (run with -vv for the traceback)", file=sys.stderr)
        return code
    finally:  # main() called from Python leaves the package's level as it found it
        logging.getLogger("llmfmri").setLevel(previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
