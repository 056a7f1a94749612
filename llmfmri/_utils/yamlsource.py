"""Reading YAML and text files while remembering where every value came from.

The YAML is composed into nodes (safe loader) and converted to plain Python by
hand, so that every field path maps to a line, duplicate keys are caught, and
text fields keep the characters as written (``yes`` stays ``"yes"``, ``007``
stays ``"007"``). Paradigms and sweeps are read this way; each raises its own
:class:`~llmfmri.exceptions.ConfigError` subclass with file:line:field problems.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from dataclasses import dataclass

from ..exceptions import ConfigError

__all__ = ["Problem", "Source", "format_path", "read_text_file"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration file, and where.

    Attributes
    ----------
    file : str
        The file as the user named it (``"<dict>"`` for a configuration given as a dict).
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


def format_path(path):
    """Format a field path tuple as ``conditions.control.prompts[3]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class Source:
    """Where a configuration came from: display name, base folder, and line maps.

    Parameters
    ----------
    name : str
        File name as the user gave it, or ``"<dict>"``.
    base_dir : Path
        Folder that relative file names (``prompts_file``...) are resolved against.
    path : Path or None
        The YAML file, if any.
    error : type, default=ConfigError
        The :class:`~llmfmri.exceptions.ConfigError` subclass to raise.
    kind : str, default="configuration"
        What the file is, for messages (``"paradigm"``, ``"sweep"``).
    expected : str, optional
        What an empty file should have held, for the message.
    """

    def __init__(self, name, base_dir, path=None, *, error=ConfigError, kind="configuration",
                 expected=None):
        self.error = error
        self.kind = kind
        self.expected = expected
        self.name = name
        self.base_dir = Path(base_dir)
        self.path = path
        self.lines = {}  # field path -> line of the value node
        self.key_lines = {}  # field path -> line of its key
        self.raw = {}  # field path -> (tag, raw text) of scalar nodes

    def line_of(self, path):
        """Best line for ``path``: its key, else its value, else the nearest parent's.

        The key line is where the field's name is written (a block mapping or list
        value starts on the next line); list items have only a value line.
        """
        path = tuple(path)
        while True:
            if path in self.key_lines:
                return self.key_lines[path]
            if path in self.lines:
                return self.lines[path]
            if not path:
                return 1 if self.lines else None
            path = path[:-1]

    def problem(self, path, message):
        return Problem(self.name, self.line_of(path), format_path(path), message)

    def display(self, relative):
        """How to show a file named relative to this paradigm's folder."""
        if self.path is not None:
            return str(Path(self.name).parent / relative)
        return str(self.base_dir / relative)

    # ------------------------------------------------------------------ YAML
    @classmethod
    def from_yaml_file(cls, path, name=None, **kwargs):
        """``(source, data)`` of a YAML file (``kwargs``: ``error``, ``kind``, ``expected``)."""
        path = Path(path)
        name = str(path) if name is None else name
        src = cls(name, path.parent, path, **kwargs)
        data = read_text_file(path, name, what=f"{src.kind} file", error=src.error)
        text, _ = data
        return src, src._parse(text)

    def _parse(self, text):
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as err:
            raise self.error(self._syntax_problem(err, text)) from None
        except yaml.YAMLError as err:  # ReaderError (control characters) and the like
            line = None
            pos = getattr(err, "position", None)
            if pos is not None:
                line = text.count("\n", 0, pos) + 1
            raise self.error(
                Problem(self.name, line, "", f"not valid YAML: {err}")
            ) from None
        if node is None:
            raise self.error(
                Problem(self.name, 1, "", "the file is empty; expected "
                        + (self.expected or "a mapping") + ".")
            )
        problems = []
        data = self._convert(node, (), problems, SafeConstructor(), set())
        if problems:
            raise self.error(problems)
        return data

    def _syntax_problem(self, err, text):
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = f"YAML syntax error: {err.problem}" if err.problem else "YAML syntax error"
        ctx_line = err.context_mark.line + 1 if err.context_mark is not None else None
        opened = (err.context or "").startswith(("while parsing a flow", "while scanning"))
        if opened and ctx_line is not None and line is not None and ctx_line != line:
            # an unclosed bracket or quote: the culprit is where it was opened
            msg += f" at line {line} ({err.context} that starts here; is a closing bracket " \
                   "or quote missing?)"
            line = ctx_line
        elif err.context:
            msg += f" ({err.context}" + (f" at line {ctx_line})" if ctx_line else ")")
        msg += "."
        here = _line(text, line) if line else ""
        if "\t" in (err.problem or "") or "\t" in here[: _indent_end(here)]:
            msg += " YAML does not allow tabs for indentation; use spaces."
        elif err.problem and "mapping values are not allowed" in err.problem:
            msg += " A value that contains ': ' must be quoted, e.g. \"Question: why?\"."
        field = _field_near(text, line) if line else ""
        return Problem(self.name, line, field, msg)

    def _convert(self, node, path, problems, constructor, active):
        if id(node) in active:
            problems.append(self.problem(path, "a YAML alias refers to itself; expected a tree "
                                               "of values."))
            return None
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            active = active | {id(node)}
            out = {}
            for knode, vnode in node.value:
                kline = knode.start_mark.line + 1
                if not isinstance(knode, ScalarNode):
                    kind = "list" if isinstance(knode, SequenceNode) else "mapping"
                    problems.append(Problem(self.name, kline, format_path(path),
                                            f"expected a plain text key, found a {kind}."))
                    continue
                key = knode.value
                if knode.tag == "tag:yaml.org,2002:merge":
                    problems.append(Problem(self.name, kline, format_path(path),
                                            f"YAML merge keys ('<<') are not supported in "
                                            f"{self.kind} files; write the keys out."))
                    continue
                kpath = path + (key,)
                if key in out:
                    problems.append(Problem(
                        self.name, kline, format_path(kpath),
                        f"duplicate key {key!r}: it is already given at line "
                        f"{self.key_lines[kpath]}. YAML would silently keep only the last one; "
                        "remove one of them."))
                    continue
                self.key_lines[kpath] = kline
                out[key] = self._convert(vnode, kpath, problems, constructor, active)
            return out
        if isinstance(node, SequenceNode):
            active = active | {id(node)}
            return [self._convert(v, path + (i,), problems, constructor, active)
                    for i, v in enumerate(node.value)]
        self.raw[path] = (node.tag, node.value)
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            problems.append(self.problem(path, f"cannot read this value: {err}"))
            return None

    def raw_text(self, path, value):
        """The scalar at ``path`` as written in the file (None stays None)."""
        tag, raw = self.raw.get(tuple(path), (None, None))
        if tag is None:  # dict source, or not a scalar
            if value is None or isinstance(value, str):
                return value
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, (int, float)):
                return str(value)
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:str":
            return value if isinstance(value, str) else raw
        return raw


def _line(text, line):
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _indent_end(s):
    return len(s) - len(s.lstrip(" \t"))


_KEY_RE = re.compile(r"^(\s*(?:-\s+)*)([^\s#:\-\[\]{}'\"][^:#]*?)\s*:(\s|$)")


def _field_near(text, line):
    """Best-effort field path of the YAML key at or above ``line`` (by indentation)."""
    stack = []
    for s in text.splitlines()[:line]:
        if not s.strip() or s.lstrip().startswith("#"):
            continue
        m = _KEY_RE.match(s)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2).strip()))
    return ".".join(k for _, k in stack)


def read_text_file(path, display, *, what="file", field_problem=None, error=ConfigError):
    """Read UTF-8 text, turning every failure into ``error`` (a ConfigError subclass).

    Parameters
    ----------
    path : Path
        File to read.
    display : str
        Name to show in messages.
    what : str
        What the file is, for messages.
    field_problem : callable or None
        ``field_problem(message)`` returns the Problem to raise (so that the
        message points at the YAML field that named the file); by default
        the problem is reported against ``display`` itself.

    Returns
    -------
    text : str
    display : str
    """
    def fail(message, line=None):
        if field_problem is not None:
            raise error(field_problem(message))
        raise error(Problem(display, line, "", message))

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        fail(f"{what} not found: {display!r} (resolved to {path.resolve()}).")
    except IsADirectoryError:
        fail(f"expected a {what}, found a directory: {display!r}.")
    except PermissionError:
        fail(f"cannot read {what} {display!r}: permission denied.")
    except OSError as err:
        fail(f"cannot read {what} {display!r}: {err.strerror or err}.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        msg = (f"expected UTF-8 text in {display!r}, found byte 0x{data[err.start]:02x} at line "
               f"{line}, column {col} that is not valid UTF-8. Re-save the file as UTF-8.")
        if field_problem is not None:
            raise error(field_problem(msg))
        near = _field_near(data.decode("utf-8", "replace"), line)
        raise error(Problem(display, line, near, msg))
    return text, display
