"""Paradigm problems: every problem names its file, line and field path.

:class:`ParadigmError` itself lives in :mod:`llmfmri.exceptions` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ParadigmError

__all__ = ["ParadigmError", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a paradigm, and where.

    Attributes
    ----------
    file : str
        The file as the user named it (``"<dict>"`` for a paradigm given as a dict).
    line : int or None
        1-based line in ``file``, or None where no line is known (dict sources).
    field : str
        Dotted field path such as ``"conditions.control.prompts[3]"``; ``""`` for
        problems with the whole file.
    message : str
        What was expected, what was found, and how to fix it.
    """

    file: str
    line: int | None
    field: str
    message: str

    def format(self):
        """Return ``"file:line: field: message"``."""
        loc = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{loc}: {self.field}: {self.message}"
        return f"{loc}: {self.message}"
