"""Small shared helpers: messages that teach, logging, the data home, atomic writes.

Nothing here imports torch, matplotlib or any heavy dependency.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger("llmfmri")

__all__ = [
    "did_you_mean",
    "check_option",
    "get_data_home",
    "set_verbose",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "sha256_file",
]


def did_you_mean(value, options, *, n=1, cutoff=0.6):
    """Return ``" Did you mean 'x'?"`` for the closest option, or ``""``.

    Parameters
    ----------
    value : str
        What the user wrote.
    options : iterable of str
        What exists.

    Examples
    --------
    >>> did_you_mean("resid_pst", ["resid_post", "attn_out"])
    " Did you mean 'resid_post'?"
    """
    matches = difflib.get_close_matches(str(value), [str(o) for o in options], n=n, cutoff=cutoff)
    if not matches:
        return ""
    if len(matches) == 1:
        return f" Did you mean {matches[0]!r}?"
    return " Did you mean one of " + ", ".join(repr(m) for m in matches) + "?"


def check_option(name, value, allowed, *, error=ValueError):
    """Raise ``error`` unless ``value`` is one of ``allowed``.

    The message follows the house format: what was expected, what was got,
    and a did-you-mean.

    Examples
    --------
    >>> check_option("noise_model", "ols", ("ols", "ar1"))
    'ols'
    """
    allowed = list(allowed)
    if value in allowed:
        return value
    listed = ", ".join(repr(a) for a in allowed)
    raise error(
        f"Allowed values for {name} are {listed}, but got {value!r}."
        + (did_you_mean(value, allowed) if isinstance(value, str) else "")
    )


def get_data_home(data_home=None):
    """Return the data home: ``data_home``, else ``$LLMFMRI_DATA``, else ``~/llmfmri_data``.

    The folder is created if missing. Models fetched by llmfmri are cached here.
    """
    if data_home is None:
        data_home = os.environ.get("LLMFMRI_DATA") or os.path.join("~", "llmfmri_data")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_verbose(verbose):
    """Set the level of the ``llmfmri`` logger from a bool, int or level name.

    ``True`` / ``1`` -> INFO, ``2`` -> DEBUG, ``False`` / ``0`` -> WARNING.
    A stream handler is added once if the logger has none.
    """
    if isinstance(verbose, str):
        level = logging.getLevelName(verbose.upper())
        if not isinstance(level, int):
            raise ValueError(
                "verbose must be a bool, an int or a logging level name such as 'INFO', "
                f"but got {verbose!r}."
            )
    elif verbose is True:
        level = logging.INFO
    elif not verbose:
        level = logging.WARNING
    else:
        level = logging.DEBUG if int(verbose) >= 2 else logging.INFO
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[llmfmri] %(message)s"))
        logger.addHandler(handler)
    return level


@contextlib.contextmanager
def atomic_path(path, *, overwrite=True):
    """Yield a temporary path beside ``path`` (same suffixes); rename it over ``path`` on success.

    Nothing is left behind if the block raises. Refuses an existing ``path``
    unless ``overwrite``.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True to replace it."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix="".join(path.suffixes),
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path, data, *, overwrite=True):
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path, text, *, overwrite=True):
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path, obj, *, overwrite=True):
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n",
                             overwrite=overwrite)


def sha256_file(path, *, chunk_size=1 << 20):
    """Return the hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()
