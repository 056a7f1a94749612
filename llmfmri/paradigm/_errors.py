"""The paradigm error: every problem names its file, line and field path."""

from __future__ import annotations

from dataclasses import dataclass

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


class ParadigmError(ValueError):
    """A paradigm file (or dict) is invalid.

    The message gives, for each problem, ``file:line: field.path: what was
    expected, what was found`` and, where it helps, a did-you-mean.

    Attributes
    ----------
    problems : list of Problem
        Every problem found, in file order where known. The first one is also
        available as :attr:`file`, :attr:`line` and :attr:`field`.

    Examples
    --------
    >>> from llmfmri.paradigm import load_paradigm, ParadigmError
    >>> try:
    ...     load_paradigm({"schema_version": 1, "name": "x", "conditons": {}})
    ... except ParadigmError as err:
    ...     problem = err.problems[0]
    >>> problem.field, problem.line
    ('conditons', None)
    >>> problem.message.endswith("Did you mean 'conditions'?")
    True
    """

    def __init__(self, problems):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__(self._render())

    def _render(self):
        if len(self.problems) == 1:
            return self.problems[0].format()
        files = sorted({p.file for p in self.problems})
        head = f"{len(self.problems)} problems in {', '.join(files)}:"
        return "\n".join([head] + ["  " + p.format() for p in self.problems])

    def __reduce__(self):
        return (type(self), (self.problems,))

    @property
    def file(self):
        return self.problems[0].file if self.problems else None

    @property
    def line(self):
        return self.problems[0].line if self.problems else None

    @property
    def field(self):
        return self.problems[0].field if self.problems else None
