"""The paradigm schema (version 1): validation into one canonical dict.

Everything a user can write is checked here, and every problem is collected
with its file, line and field path before one :class:`ParadigmError` is
raised. The canonical dict has every default filled in and every prompt
inline; it is what :meth:`Paradigm.to_dict` returns and what is hashed.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path

from .._utils import did_you_mean
from ._errors import ParadigmError, Problem
from .._utils.yamlsource import format_path, read_text_file

__all__ = ["SCHEMA_VERSION", "validate_spec"]

SCHEMA_VERSION = 1

TOP_KEYS = ("schema_version", "name", "description", "conditions", "design", "runs",
            "generation", "frames", "context", "seed")
CONDITION_KEYS = ("role", "description", "prompts", "prompts_file", "answers", "answers_file")
BLOCK_KEYS = ("type", "sequence", "tasks", "task_order", "cycles", "prompts_per_block")
EVENT_KEYS = ("type", "trials_per_condition", "max_consecutive")
RUNS_KEYS = ("n", "split")
GENERATION_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_p", "seed", "stop",
                   "chat_template")

ROLES = ("task", "control")
DESIGN_TYPES = ("block", "event")
SPLITS = ("disjoint", "reuse")
TASK_ORDERS = ("fixed", "shuffled")
FRAMES = ("generated", "prompt", "both", "pooled_last", "pooled_mean")
CONTEXTS = ("independent", "continuous")
PLACEHOLDER = "task"
RESERVED_NAMES = ("task", "constant")

GENERATION_DEFAULTS = {
    "max_new_tokens": 16,
    "do_sample": False,
    "temperature": 1.0,
    "top_p": 1.0,
    "seed": 0,
    "stop": [],
    "chat_template": False,
}

#: Text that table readers with pandas' defaults read as a missing value (pandas'
#: ``STR_NA_VALUES``; nilearn reads BIDS events with them): never a trial_type or label
NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})

_NAME_RE = re.compile(r"^[A-Za-z0-9]+$")
_CONDITION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_MISSING = object()
_BAD = object()


def describe(value):
    """Describe a found value for an error message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else f"the string {_short(value)!r}"
    if isinstance(value, list):
        return "an empty list" if not value else f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        keys = list(value)
        shown = ", ".join(repr(str(k)) for k in keys[:4]) + (", ..." if len(keys) > 4 else "")
        return "an empty mapping" if not keys else f"a mapping with key(s) {shown}"
    return f"a {type(value).__name__} ({_short(str(value))})"


def _short(text, n=60):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Validator:
    def __init__(self, src):
        self.src = src
        self.problems = []

    # -------------------------------------------------------------- helpers
    def err(self, path, message):
        self.problems.append(self.src.problem(path, message))

    def err_at(self, file, line, path, message):
        self.problems.append(Problem(file, line, format_path(path), message))

    def err_in_file(self, file, line, path, message):
        """A problem inside a prompt file; the message says where the YAML names it."""
        yline = self.src.line_of(path)
        named = f"{self.src.name}:{yline}" if yline is not None else self.src.name
        self.err_at(file, line, path, f"{message} (file named by {format_path(path)} in {named})")

    def check_keys(self, mapping, path, allowed, required=(), *, elsewhere=None):
        """Report unknown keys (with a did-you-mean) and missing required ones.

        Returns the set of allowed keys that some unknown key looks like a typo
        of; a missing key that was merely misspelt is not reported twice.
        """
        suggested = set()
        for key in mapping:
            if key not in allowed:
                note = ""
                if elsewhere:
                    for other, keys in elsewhere.items():
                        if key in keys:
                            note = f" ({key!r} belongs to {other})"
                close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
                suggested.update(close)
                self.err(path + (key,),
                         f"unknown key {key!r}{note}. Allowed keys here: {', '.join(allowed)}."
                         + did_you_mean(key, allowed))
        for key in required:
            if key not in mapping and key not in suggested:
                self.err(path + (key,), f"missing required key {key!r}.")
        return suggested

    def mapping(self, value, path, what):
        if isinstance(value, dict):
            return value
        self.err(path, f"expected {what}, found {describe(value)}.")
        return None

    def integer(self, mapping, key, path, default, *, minimum=None, allow_none=False):
        value = mapping.get(key, _MISSING)
        if value is _MISSING:
            return default
        p = path + (key,)
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            quoted = isinstance(value, str) and value.strip().isdigit()
            hint = " (write it without quotes)" if quoted else ""
            bound = f" >= {minimum}" if minimum is not None else ""
            self.err(p, f"expected a whole number{' or null' if allow_none else ''}{bound}, "
                        f"found {describe(value)}{hint}.")
            return _BAD
        if minimum is not None and value < minimum:
            self.err(p, f"expected a whole number >= {minimum}, found {value}.")
            return _BAD
        return value

    def number(self, mapping, key, path, default):
        value = mapping.get(key, _MISSING)
        if value is _MISSING:
            return default
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value)):
            self.err(path + (key,), f"expected a number, found {describe(value)}.")
            return _BAD
        return float(value)

    def boolean(self, mapping, key, path, default):
        value = mapping.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.err(path + (key,), f"expected true or false, found {describe(value)}.")
            return _BAD
        return value

    def text(self, mapping, key, path, default, *, required=False):
        value = mapping.get(key, _MISSING)
        if value is _MISSING:
            return default
        p = path + (key,)
        if value is None and not required:
            return default
        raw = self.src.raw_text(p, value)
        if not isinstance(raw, str):
            self.err(p, f"expected text, found {describe(value)}.")
            return _BAD
        return raw.strip()

    def option(self, mapping, key, path, allowed, default):
        value = mapping.get(key, _MISSING)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or value not in allowed:
            listed = ", ".join(repr(a) for a in allowed)
            self.err(path + (key,), f"expected one of {listed}, found {describe(value)}."
                     + (did_you_mean(value, allowed) if isinstance(value, str) else ""))
            return _BAD
        return value

    def raise_if_any(self):
        if self.problems:
            main = self.src.name

            def where(i):
                p = self.problems[i]
                return (p.file != main, p.file, p.line or 0, i)

            order = sorted(range(len(self.problems)), key=where)
            raise ParadigmError([self.problems[i] for i in order])

    # -------------------------------------------------------------- schema
    def run(self, spec):
        if not isinstance(spec, dict):
            self.err((), f"expected a mapping with schema_version, name, conditions and design "
                         f"at the top of the file, found {describe(spec)}.")
            self.raise_if_any()
        self.check_keys(spec, (), TOP_KEYS, ("schema_version", "name", "conditions", "design"))
        version = spec.get("schema_version", _MISSING)
        if version is not _MISSING:
            if isinstance(version, bool) or not isinstance(version, int):
                self.err(("schema_version",), f"expected the whole number {SCHEMA_VERSION}, "
                                              f"found {describe(version)}.")
            elif version != SCHEMA_VERSION:
                self.err(("schema_version",),
                         f"this version of llmfmri reads schema_version {SCHEMA_VERSION}, found "
                         f"{version}." + (" Upgrade llmfmri to read newer files."
                                          if version > SCHEMA_VERSION else ""))
        name = self._name(spec)
        description = self.text(spec, "description", (), "")
        conditions = self._conditions(spec)
        frames = self.option(spec, "frames", (), FRAMES, "generated")
        context = self.option(spec, "context", (), CONTEXTS, "independent")
        seed = self.integer(spec, "seed", (), 0, minimum=0)
        runs = self._runs(spec)
        generation = self._generation(spec, frames)
        design = self._design(spec, conditions)
        if conditions is not None and design is not None and runs is not None:
            self._counts(conditions, design, runs)
        self.raise_if_any()
        return {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "description": description,
            "conditions": {
                c: {"role": v["role"], "description": v["description"],
                    "prompts": list(v["prompts"]),
                    "answers": None if v["answers"] is None else list(v["answers"])}
                for c, v in conditions.items()
            },
            "design": design["canonical"],
            "runs": {"n": runs["n"], "split": runs["split"]},
            "generation": generation,
            "frames": frames,
            "context": context,
            "seed": seed,
        }

    def _name(self, spec):
        name = spec.get("name", _MISSING)
        if name is _MISSING:
            return _BAD
        raw = self.src.raw_text(("name",), name)
        if not isinstance(raw, str) or not _NAME_RE.match(raw):
            fixed = re.sub(r"[^A-Za-z0-9]", "", raw) if isinstance(raw, str) else ""
            self.err(("name",), "expected a BIDS label (letters and digits only, used as "
                                f"task-<name> in file names), found {describe(name)}."
                     + (f" Did you mean {fixed!r}?" if fixed else ""))
            return _BAD
        if raw in NA_STRINGS:
            self.err(("name",), _na_message(raw, "paradigm name", "becomes the BIDS task "
                                            "label task-<name> and the TaskName of every "
                                            "sidecar", [], label=True))
            return _BAD
        return raw

    # ---------------------------------------------------------- conditions
    def _conditions(self, spec):
        path = ("conditions",)
        if "conditions" not in spec:
            return None
        conds = self.mapping(spec["conditions"], path,
                             "a mapping from condition names to {role, prompts}")
        if conds is None:
            return None
        if not conds:
            self.err(path, "expected at least one condition, found an empty mapping.")
            return None
        out = {}
        ok = True
        for name, cond in conds.items():
            cpath = path + (name,)
            if not isinstance(name, str) or not _CONDITION_RE.match(name):
                found = repr(name) if isinstance(name, str) else describe(name)
                self.err(cpath, f"condition names must start with a letter and contain only "
                                f"letters, digits and '_' (they become trial_type values and "
                                f"names in contrasts such as 'a - b'), found {found}.")
                ok = False
            elif name in NA_STRINGS:
                self.err(cpath, _na_message(name, "condition name", "becomes the trial_type of "
                                            "its events: they would silently lose their "
                                            "condition", list(conds)))
                ok = False
            elif name in RESERVED_NAMES:
                self.err(cpath, f"{name!r} is reserved ("
                         + ("in design.sequence it stands for each task in turn"
                            if name == PLACEHOLDER else "it names the design matrix's intercept")
                         + "); choose another condition name.")
                ok = False
            cond = self.mapping(cond, cpath, "a mapping with role and prompts (or prompts_file)")
            if cond is None:
                ok = False
                continue
            typos = self.check_keys(cond, cpath, CONDITION_KEYS, ("role",))
            role = self.option(cond, "role", cpath, ROLES, _BAD)
            description = self.text(cond, "description", cpath, "")
            prompts = self._prompts(cond, cpath, typos)
            answers = self._answers(cond, cpath, prompts)
            if _BAD in (role, description) or prompts is None or answers is _BAD:
                ok = False
                continue
            out[name] = {"role": role, "description": description, "prompts": prompts["texts"],
                         "locs": prompts["locs"], "field": prompts["field"],
                         "answers": answers}
        if not ok:
            return None
        if not any(c["role"] == "task" for c in out.values()):
            self.err(path, "no condition has role 'task'; expected at least one (the others "
                           "may be 'control').")
            return None
        self._duplicates(out)
        return out

    def _prompts(self, cond, cpath, typos=()):
        has_inline, has_file = "prompts" in cond, "prompts_file" in cond
        if has_inline and has_file:
            self.err(cpath + ("prompts_file",), "give either prompts (a list) or prompts_file "
                                                "(a file), not both.")
            return None
        if not has_inline and not has_file:
            if {"prompts", "prompts_file"} & set(typos):
                return None  # already reported as a misspelt key
            self.err(cpath + ("prompts",), "missing prompts: give prompts: [...] (a list of "
                     "strings) or prompts_file: FILE (.txt with one prompt per line, or .tsv with "
                     "columns prompt and answer).")
            return None
        if has_inline:
            return self._inline_prompts(cond["prompts"], cpath + ("prompts",))
        return self._file_prompts(cond["prompts_file"], cpath + ("prompts_file",))

    def _inline_prompts(self, items, ppath):
        if not isinstance(items, list) or not items:
            self.err(ppath, f"expected a non-empty list of prompts, found {describe(items)}.")
            return None
        texts, locs, ok = [], [], True
        for i, item in enumerate(items):
            ipath = ppath + (i,)
            if isinstance(item, dict):
                hint = ""
                if len(item) == 1:
                    k, v = next(iter(item.items()))
                    hint = (f" YAML read '{k}: {v}' as a key and a value: quote a prompt that "
                            f"contains ': ', e.g. \"{k}: {v}\".")
                self.err(ipath, f"expected a prompt (text), found {describe(item)}.{hint}")
                ok = False
                continue
            if isinstance(item, list):
                self.err(ipath, f"expected a prompt (text), found {describe(item)}.")
                ok = False
                continue
            raw = self.src.raw_text(ipath, item)
            if not isinstance(raw, str) or not raw.strip():
                self.err(ipath, "empty prompt; expected text. Remove the item or write the prompt.")
                ok = False
                continue
            texts.append(raw.strip())
            locs.append((self.src.name, self.src.line_of(ipath), format_path(ipath)))
        if not ok:
            return None
        return {"texts": texts, "locs": locs, "field": ppath, "answers": None}

    def _resolve_file(self, value, fpath, allowed_ext):
        if not isinstance(value, str) or not value.strip():
            self.err(fpath, f"expected a file name (relative to the paradigm file), found "
                            f"{describe(value)}.")
            return None
        rel = value.strip()
        full = (self.src.base_dir / Path(rel).expanduser())
        display = self.src.display(rel)
        if full.suffix.lower() not in allowed_ext:
            self.err(fpath, f"expected a {' or '.join(allowed_ext)} file, found {rel!r}.")
            return None
        if not full.exists():
            hint = ""
            if full.parent.is_dir():
                hint = did_you_mean(Path(rel).name, sorted(p.name for p in full.parent.iterdir()))
            self.err(fpath, f"file not found: {rel!r} (looked for {full}).{hint}")
            return None
        try:
            text, _ = read_text_file(full, display, what="prompt file", error=ParadigmError,
                                     field_problem=lambda m: self.src.problem(fpath, m))
        except ParadigmError as err:
            self.problems.extend(err.problems)
            return None
        return text, display

    def _file_prompts(self, value, fpath):
        got = self._resolve_file(value, fpath, (".txt", ".tsv"))
        if got is None:
            return None
        text, display = got
        field = format_path(fpath)
        texts, locs, answers, ok = [], [], None, True
        lines = text.splitlines()
        if display.lower().endswith(".tsv"):
            header_at = next((i for i, s in enumerate(lines)
                              if s.strip() and not s.lstrip().startswith("#")), None)
            if header_at is None:
                self.err_in_file(display, 1, fpath, f"{display!r} has no header line; expected "
                                 "the tab-separated columns prompt and answer.")
                return None
            cols = [c.strip() for c in lines[header_at].split("\t")]
            bad = [c for c in cols if c not in ("prompt", "answer")]
            if bad or "prompt" not in cols or len(set(cols)) != len(cols):
                hint = did_you_mean(bad[0], ["prompt", "answer"]) if bad else ""
                self.err_in_file(display, header_at + 1, fpath,
                                 "expected a header of tab-separated columns 'prompt' and "
                                 f"optionally 'answer', found {cols!r}.{hint}")
                return None
            answers = [] if "answer" in cols else None
            for i in range(header_at + 1, len(lines)):
                s = lines[i]
                if not s.strip() or s.lstrip().startswith("#"):
                    continue
                cells = s.split("\t")
                if len(cells) != len(cols):
                    self.err_in_file(display, i + 1, fpath,
                                     f"expected {len(cols)} tab-separated columns "
                                     f"({', '.join(cols)}), found {len(cells)}.")
                    ok = False
                    continue
                row = dict(zip(cols, (c.strip() for c in cells)))
                if not row["prompt"]:
                    self.err_in_file(display, i + 1, fpath, "empty prompt in column 'prompt'.")
                    ok = False
                    continue
                if answers is not None and not row["answer"]:
                    self.err_in_file(display, i + 1, fpath, "empty answer in column 'answer'.")
                    ok = False
                    continue
                texts.append(row["prompt"])
                locs.append((display, i + 1, field))
                if answers is not None:
                    answers.append(row["answer"])
        else:
            for i, s in enumerate(lines):
                s = s.strip()
                if not s or s.startswith("#"):
                    continue
                texts.append(s)
                locs.append((display, i + 1, field))
        if not ok:
            return None
        if not texts:
            self.err(fpath, f"{display!r} holds no prompts (blank lines and lines starting with "
                            "'#' are skipped).")
            return None
        return {"texts": texts, "locs": locs, "field": fpath, "answers": answers}

    def _answers(self, cond, cpath, prompts):
        inline, from_file = "answers" in cond, "answers_file" in cond
        if inline and from_file:
            self.err(cpath + ("answers_file",), "give either answers (a list) or answers_file, "
                                                "not both.")
            return _BAD
        tsv_answers = prompts["answers"] if prompts is not None else None
        if tsv_answers is not None and (inline or from_file):
            key = "answers" if inline else "answers_file"
            self.err(cpath + (key,), "answers already come from the 'answer' column of "
                                     "prompts_file; remove this key or that column.")
            return _BAD
        if tsv_answers is not None:
            return tsv_answers
        if not inline and not from_file:
            return None
        if inline:
            apath = cpath + ("answers",)
            items = cond["answers"]
            if items is None:
                return None
            if not isinstance(items, list):
                self.err(apath, f"expected a list of answers (one per prompt, in order), found "
                                f"{describe(items)}.")
                return _BAD
            out, ok = [], True
            for i, item in enumerate(items):
                raw = self.src.raw_text(apath + (i,), item)
                if isinstance(item, (dict, list)) or not isinstance(raw, str) or not raw.strip():
                    self.err(apath + (i,), f"expected an answer (text), found {describe(item)}.")
                    ok = False
                    continue
                out.append(raw.strip())
            if not ok:
                return _BAD
        else:
            apath = cpath + ("answers_file",)
            got = self._resolve_file(cond["answers_file"], apath, (".txt",))
            if got is None:
                return _BAD
            text, _ = got
            out = [s.strip() for s in text.splitlines()
                   if s.strip() and not s.strip().startswith("#")]
        if prompts is not None and len(out) != len(prompts["texts"]):
            self.err(apath, f"expected {len(prompts['texts'])} answers (one per prompt, in "
                            f"order), found {len(out)}.")
            return _BAD
        return out

    def _duplicates(self, conds):
        seen = {}
        for name, cond in conds.items():
            for text, (file, line, field) in zip(cond["prompts"], cond["locs"]):
                key = " ".join(text.split())
                where = f"{field}, {file}:{line}" if line is not None else f"{field}, {file}"
                if key in seen:
                    first = seen[key]
                    self.err_at(file, line, _parse_field(field),
                                f"duplicate prompt {_short(text)!r}: the same text is already "
                                f"given at {first}. Every prompt must be unique (held-out runs "
                                f"must not share prompts); remove or reword one.")
                else:
                    seen[key] = where

    # -------------------------------------------------------------- design
    def _design(self, spec, conds):
        path = ("design",)
        if "design" not in spec:
            return None
        design = self.mapping(spec["design"], path, "a mapping with type (block or event) and "
                                                    "its settings")
        if design is None:
            return None
        if "type" not in design:
            self.err(path + ("type",), "missing required key 'type'; expected 'block' or 'event'.")
            return None
        kind = self.option(design, "type", path, DESIGN_TYPES, _BAD)
        if kind is _BAD:
            return None
        if kind == "block":
            self.check_keys(design, path, BLOCK_KEYS, ("sequence", "prompts_per_block"),
                            elsewhere={"event designs": EVENT_KEYS})
            return self._block(design, path, conds)
        self.check_keys(design, path, EVENT_KEYS, elsewhere={"block designs": BLOCK_KEYS})
        return self._event(design, path, conds)

    def _condition_ref(self, value, path, conds, *, placeholder_ok):
        names = list(conds)
        options = names + ([PLACEHOLDER] if placeholder_ok else [])
        raw = self.src.raw_text(path, value)
        if not isinstance(raw, str) or not raw.strip():
            self.err(path, f"expected a condition name, found {describe(value)}.")
            return _BAD
        raw = raw.strip()
        if raw in options:
            return raw
        extra = (f"; {PLACEHOLDER!r} stands for each of design.tasks in turn" if placeholder_ok
                 else "")
        self.err(path, f"undefined condition {raw!r}. Defined conditions: "
                       f"{', '.join(names)}{extra}." + did_you_mean(raw, options))
        return _BAD

    def _block(self, design, path, conds):
        if conds is None:
            return None
        ok = True
        seq_value = design.get("sequence")
        spath = path + ("sequence",)
        sequence = []
        if "sequence" in design:
            if not isinstance(seq_value, list) or not seq_value:
                self.err(spath, f"expected a non-empty list of condition names (e.g. [control, "
                                f"task, control]), found {describe(seq_value)}.")
                ok = False
            else:
                for i, item in enumerate(seq_value):
                    ref = self._condition_ref(item, spath + (i,), conds, placeholder_ok=True)
                    ok &= ref is not _BAD
                    sequence.append(ref)
        placeholder = PLACEHOLDER in sequence
        tasks = None
        tpath = path + ("tasks",)
        tvalue = design.get("tasks")
        if tvalue is not None:
            if not placeholder and ok:
                self.err(tpath, f"design.tasks is only used when design.sequence contains "
                                f"{PLACEHOLDER!r} (which stands for each task in turn); found "
                                f"sequence {sequence}.")
                ok = False
            elif not isinstance(tvalue, list) or not tvalue:
                self.err(tpath, f"expected a non-empty list of task condition names, found "
                                f"{describe(tvalue)}.")
                ok = False
            else:
                tasks = []
                for i, item in enumerate(tvalue):
                    ref = self._condition_ref(item, tpath + (i,), conds, placeholder_ok=False)
                    if ref is _BAD:
                        ok = False
                        continue
                    if ref in tasks:
                        self.err(tpath + (i,), f"{ref!r} is listed twice; expected each task "
                                               "once.")
                        ok = False
                    elif conds[ref]["role"] != "task":
                        self.err(tpath + (i,), f"{ref!r} has role {conds[ref]['role']!r}; "
                                               "design.tasks lists conditions with role 'task'.")
                        ok = False
                    tasks.append(ref)
        elif placeholder:
            tasks = [c for c, v in conds.items() if v["role"] == "task"]
        task_order = self.option(design, "task_order", path, TASK_ORDERS, "fixed")
        if task_order == "shuffled" and not placeholder and ok:
            self.err(path + ("task_order",), f"task_order 'shuffled' shuffles design.tasks, which "
                     f"needs {PLACEHOLDER!r} in design.sequence; found sequence {sequence}.")
            ok = False
        cycles = self.integer(design, "cycles", path, 1, minimum=1)
        ok &= task_order is not _BAD and cycles is not _BAD
        if not ok or not sequence:
            return None
        # conditions presented, in order of first appearance
        per_cycle = []
        for entry in sequence:
            if entry == PLACEHOLDER:
                per_cycle.extend(tasks)
            elif entry not in per_cycle:
                per_cycle.append(entry)
        used = list(dict.fromkeys(per_cycle))
        blocks_per_cycle = {c: 0 for c in used}
        for t in (tasks if placeholder else [None]):
            for entry in sequence:
                blocks_per_cycle[t if entry == PLACEHOLDER else entry] += 1
        ppb = self._per_condition(design, "prompts_per_block", path, conds, used,
                                  tasks if placeholder else None)
        unused = [c for c in conds if c not in used]
        for c in unused:
            where = "design.sequence" + (" or design.tasks" if placeholder else "")
            self.err(("conditions", c), f"condition {c!r} is defined but never presented "
                     f"(it is not in {where}); remove it or add it to the design.")
        if ppb is None or unused:
            return None
        if not any(conds[c]["role"] == "task" for c in used):
            self.err(spath, "the sequence presents no condition with role 'task'.")
            return None
        need = {c: blocks_per_cycle[c] * cycles * ppb[c] for c in used}
        detail = {c: f"{_plural(blocks_per_cycle[c] * cycles, 'block')} × "
                     f"{_plural(ppb[c], 'prompt')}" for c in used}
        canonical = {"type": "block", "sequence": sequence, "tasks": tasks,
                     "task_order": task_order, "cycles": cycles, "prompts_per_block": ppb}
        return {"canonical": canonical, "need": need, "detail": detail, "auto": False,
                "need_field": path + ("prompts_per_block",)}

    def _per_condition(self, design, key, path, conds, used, tasks):
        """Read an int or a {condition: int} mapping for every condition in ``used``."""
        kpath = path + (key,)
        if key not in design:
            return None
        value = design[key]
        if isinstance(value, dict):
            options = list(used) + ([PLACEHOLDER] if tasks else [])
            given, ok = {}, True
            for k in value:
                if k not in options:
                    why = ("is not presented by this design" if k in conds
                           else "is not a defined condition")
                    self.err(kpath + (k,), f"{k!r} {why}; expected keys among "
                             f"{', '.join(options)}." + did_you_mean(k, options))
                    ok = False
                    continue
                n = self.integer(value, k, kpath, None, minimum=1)
                ok &= n is not _BAD
                given[k] = n
            if not ok:
                return None
            out, missing = {}, []
            for c in used:
                if c in given:
                    out[c] = given[c]
                elif tasks and c in tasks and PLACEHOLDER in given:
                    out[c] = given[PLACEHOLDER]
                else:
                    missing.append(c)
            if missing:
                self.err(kpath, f"no value for {', '.join(repr(m) for m in missing)}; expected "
                                "one whole number per condition (or one number for all).")
                return None
            return out
        n = self.integer(design, key, path, None, minimum=1)
        if n is _BAD:
            return None
        return {c: n for c in used}

    def _event(self, design, path, conds):
        if conds is None:
            return None
        used = list(conds)
        max_consecutive = self.integer(design, "max_consecutive", path, None, minimum=1,
                                       allow_none=True)
        if max_consecutive is _BAD:
            return None
        auto = design.get("trials_per_condition") is None
        if auto:
            need = None
        else:
            need = self._per_condition(design, "trials_per_condition", path, conds, used, None)
            if need is None:
                return None
        canonical = {"type": "event", "trials_per_condition": need,
                     "max_consecutive": max_consecutive}
        return {"canonical": canonical, "need": need, "auto": auto,
                "detail": {c: "design.trials_per_condition" for c in used},
                "need_field": path + ("trials_per_condition",)}

    # ---------------------------------------------------------------- runs
    def _runs(self, spec):
        value = spec.get("runs", _MISSING)
        if value is _MISSING or value is None:
            return {"n": 1, "split": "disjoint", "field": ("runs",)}
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                self.err(("runs",), f"expected a number of runs >= 1, found {value}.")
                return None
            return {"n": value, "split": "disjoint", "field": ("runs",)}
        runs = self.mapping(value, ("runs",), "a number of runs or a mapping such as "
                                              "{n: 3, split: disjoint}")
        if runs is None:
            return None
        self.check_keys(runs, ("runs",), RUNS_KEYS, ("n",))
        n = self.integer(runs, "n", ("runs",), _BAD, minimum=1)
        split = self.option(runs, "split", ("runs",), SPLITS, "disjoint")
        if _BAD in (n, split):
            return None
        return {"n": n, "split": split, "field": ("runs", "n")}

    # ---------------------------------------------------------- generation
    def _generation(self, spec, frames):
        path = ("generation",)
        value = spec.get("generation")
        if value is None:
            value = {}
        gen = self.mapping(value, path, "a mapping of generation settings (max_new_tokens, "
                                        "do_sample, ...)")
        if gen is None:
            return None
        self.check_keys(gen, path, GENERATION_KEYS)
        d = GENERATION_DEFAULTS
        out = {
            "max_new_tokens": self.integer(gen, "max_new_tokens", path, d["max_new_tokens"],
                                           minimum=0),
            "do_sample": self.boolean(gen, "do_sample", path, d["do_sample"]),
            "temperature": self.number(gen, "temperature", path, d["temperature"]),
            "top_p": self.number(gen, "top_p", path, d["top_p"]),
            "seed": self.integer(gen, "seed", path, d["seed"], minimum=0),
            "stop": self._stop(gen, path),
            "chat_template": self.boolean(gen, "chat_template", path, d["chat_template"]),
        }
        if any(v is _BAD for v in out.values()):
            return None
        if out["temperature"] <= 0:
            self.err(path + ("temperature",), f"expected a number > 0, found "
                     f"{out['temperature']!r}; for greedy decoding set do_sample: false.")
        if not 0 < out["top_p"] <= 1:
            self.err(path + ("top_p",), f"expected a number in (0, 1], found {out['top_p']!r}.")
        if not out["do_sample"]:
            for key in ("temperature", "top_p"):
                if key in gen and out[key] != d[key]:
                    self.err(path + (key,), f"{key} is only used when sampling, but do_sample is "
                             f"false (greedy decoding), found {key} {out[key]!r}. Set do_sample: "
                             f"true to sample, or remove {key}.")
        if frames in ("generated", "both") and out["max_new_tokens"] == 0:
            self.err(path + ("max_new_tokens",), f"frames {frames!r} needs generated tokens; "
                     "expected max_new_tokens >= 1, found 0. Use frames: prompt or pooled_last to "
                     "record prompt tokens only.")
        return out

    def _stop(self, gen, path):
        value = gen.get("stop", _MISSING)
        spath = path + ("stop",)
        if value is _MISSING or value is None:
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.err(spath, f"expected a stop string or a list of them, found {describe(value)}.")
            return _BAD
        out = []
        for i, item in enumerate(items):
            p = spath if isinstance(value, str) else spath + (i,)
            raw = self.src.raw_text(p, item)
            if not isinstance(raw, str) or raw == "":
                self.err(p, f"expected a non-empty stop string, found {describe(item)}.")
                return _BAD
            out.append(raw)
        return out

    # -------------------------------------------------------------- counts
    def _counts(self, conds, design, runs):
        n, split = runs["n"], runs["split"]
        need = design["need"]
        if design["auto"]:
            need = {}
            for c, v in conds.items():
                avail = len(v["prompts"])
                per = avail // n if split == "disjoint" else avail
                if per == 0:
                    self.err(runs["field"], f"{n} runs with runs.split 'disjoint' need at least "
                             f"{n} {c!r} prompts (one per run), but conditions.{c} has {avail} "
                             f"{self._cond_where(v)}. Add prompts, use fewer runs, or set "
                             "runs.split: reuse.")
                need[c] = per
            design["canonical"]["trials_per_condition"] = need
        for c, per_run in need.items():
            v = conds[c]
            avail = len(v["prompts"])
            where = self._cond_where(v)
            if split == "disjoint" and per_run * n > avail:
                self.err(runs["field"],
                         f"{n} runs with runs.split 'disjoint' need {n} × {per_run} = "
                         f"{n * per_run} distinct {c!r} prompts ({per_run} per run: "
                         f"{design['detail'][c]}), but conditions.{c} has {avail}{where}. "
                         f"Add {_plural(n * per_run - avail, 'prompt')}, present fewer per run, "
                         "use fewer runs, or set runs.split: reuse to let runs share prompts.")
            elif split == "reuse" and per_run > avail:
                self.err(design["need_field"],
                         f"each run presents {per_run} {c!r} prompts ({design['detail'][c]}), "
                         f"but conditions.{c} has {avail}{where}; a run never repeats a prompt. "
                         "Add prompts or present fewer per run.")
        k = design["canonical"].get("max_consecutive")
        if k is not None and need:
            counts = [x for x in need.values() if x > 0]
            total, most = sum(counts), max(counts)
            if most > k * (total - most + 1):
                c = max(need, key=need.get)
                self.err(("design", "max_consecutive"),
                         f"cannot order {most} {c!r} trials among {total} per run with at most "
                         f"{k} in a row (at most {k * (total - most + 1)} fit); raise "
                         "max_consecutive or balance trials_per_condition.")

    def _cond_where(self, cond):
        line = self.src.line_of(cond["field"])
        return f" (line {line})" if line is not None else ""


def _na_message(name, what, role, taken, *, label=False):
    """The error for user text that table readers would read as a missing value."""
    options = [name.lower(), f"{name.lower()}_condition" if not label else f"{name.lower()}task"]
    pattern = _NAME_RE if label else _CONDITION_RE
    hint = next((o for o in options if o not in NA_STRINGS and o not in RESERVED_NAMES
                 and o not in taken and pattern.match(o)), None)
    return (f"{what} {name!r} is read as a missing value (NaN) by table readers with pandas' "
            f"default settings (pandas.read_csv, nilearn's first_level_from_bids and other "
            f"BIDS tools), and it {role}. Choose another {what}."
            + (f" Did you mean {hint!r}?" if hint else ""))


def _parse_field(field):
    """Inverse of format_path for messages that only have the string."""
    parts = []
    for piece in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        parts.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return tuple(parts)


def validate_spec(spec, src):
    """Validate a raw spec; return the canonical dict or raise :class:`ParadigmError`."""
    return _Validator(src).run(spec)
