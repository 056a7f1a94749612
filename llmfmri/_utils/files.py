"""Files: the data home, atomic writes that never overwrite unless asked, checksums.

Nothing here imports torch, matplotlib or any heavy dependency. Output *names*
belong to :mod:`llmfmri.io`; these are the primitives every writer uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = [
    "get_data_home",
    "package_versions",
    "new_file_mode",
    "check_writable",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "sha256_file",
]


def get_data_home(data_home=None):
    """Return the data home: ``data_home``, else ``$LLMFMRI_DATA``, else ``~/llmfmri_data``.

    The folder is created if missing. Models fetched by llmfmri are cached here.
    """
    if data_home is None:
        data_home = os.environ.get("LLMFMRI_DATA") or os.path.join("~", "llmfmri_data")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_writable(path, *, overwrite=False):
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is False.

    The message names the file and how to replace it (MNE's ``_check_fname``).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    return path


def _umask():
    mask = os.umask(0o022)  # read it (the only way), then put it back
    os.umask(mask)
    return mask


#: the process's umask when llmfmri was imported
_UMASK = _umask()


def new_file_mode(path):
    """Give a temporary file the mode a new file would get (``0o666 & ~umask``).

    ``tempfile.mkstemp`` creates files readable by their owner only (0600);
    renamed into place they would keep that mode, and results on shared storage
    (a Ray cluster's output folder) could not be read by the rest of the group.
    """
    os.chmod(path, 0o666 & ~_UMASK)


@contextlib.contextmanager
def atomic_path(path, *, overwrite=False):
    """Yield a temporary path beside ``path`` (same suffixes); rename it over ``path`` on success.

    Nothing is left behind if the block raises. Refuses an existing ``path``
    unless ``overwrite`` (checked before the block runs and again before the
    rename, so a file that appeared meanwhile is not replaced either).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = check_writable(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix="".join(path.suffixes),
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    new_file_mode(tmp)
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            try:  # a hard link fails if the target appeared meanwhile: no silent replace
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(
                    f"{path} appeared while it was being written; pass overwrite=True to "
                    "replace it."
                ) from None
            except OSError:  # file systems without hard links
                check_writable(path, overwrite=False)
                os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path, data, *, overwrite=False):
    """Write ``data`` to ``path`` through a temporary file and an atomic rename.

    Raises ``FileExistsError`` for an existing ``path`` unless ``overwrite``.
    """
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path, text, *, overwrite=False):
    """Write UTF-8 ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_json(path, obj, *, overwrite=False):
    """Write ``obj`` as indented JSON to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n",
                             overwrite=overwrite)


def package_versions(names):
    """Installed versions of ``names`` (None when not installed) and Python's, for provenance.

    Returns
    -------
    dict of str -> str or None
    """
    import importlib.metadata
    import platform

    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def sha256_file(path, *, chunk_size=1 << 20):
    """Return the hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()
