"""The commands of ``llmfmri``: one module per command, registered one way.

Each module defines ``NAME``, ``HELP``, ``DESCRIPTION`` (optional ``EPILOG``),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import only
argparse at import time; the work (and heavy imports) happens in ``run``,
which calls the library and raises on failure. :func:`llmfmri.cli.main` alone
turns exceptions into messages and exit codes:

====  =====================================================================
code  meaning
====  =====================================================================
0     success
1     a failure while running (a model that cannot run, an incomplete
      recording, an internal error...)
2     bad input or usage: unknown options, invalid paradigm, a file that does
      not exist, an output that exists without ``--overwrite``, a bad contrast
130   interrupted (Ctrl-C); run the same command again to resume
====  =====================================================================

To add a command: write ``llmfmri/commands/<name>.py`` with the five names
above, add ``<name>`` to :data:`COMMANDS`, and add its cases to
``tests/test_cli_exit_codes.py``.
"""

#: Command modules, in the order ``llmfmri --help`` lists them.
COMMANDS = ("run", "fetch", "validate", "record", "glm", "report", "lesion", "importance",
            "truncate", "mfa", "sweep")

__all__ = ["COMMANDS"]
