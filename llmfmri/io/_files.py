"""Writers and readers: TSV that round-trips, JSON, NIfTI, and all-or-nothing output sets."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import (atomic_write_bytes, atomic_write_json, atomic_write_text, check_writable,
                      new_file_mode)
from ..exceptions import OutputNameError

__all__ = [
    "MISSING",
    "write_tsv",
    "read_tsv",
    "write_json",
    "nifti_bytes",
    "write_nifti",
    "OutputSet",
]

#: How a missing value is written in every TSV (BIDS), and the only text read back as missing.
MISSING = "n/a"


def write_tsv(table, path, *, overwrite=False, index=False, float_format=None):
    """Write a DataFrame as a BIDS TSV, atomically; missing values as ``n/a``.

    Floats are written with full precision (``repr``) unless ``float_format``
    is given, so :func:`read_tsv` gives the same numbers back.

    Parameters
    ----------
    table : pandas.DataFrame
    path : str or Path
    overwrite : bool, default=False
        Replace an existing file; otherwise ``FileExistsError``.
    index : bool, default=False
        Write the index as the first column.

    Returns
    -------
    pathlib.Path
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, but got {type(table).__name__}.")
    text = table.to_csv(sep="\t", index=index, na_rep=MISSING, float_format=float_format,
                        lineterminator="\n")
    return atomic_write_text(path, text, overwrite=overwrite)


def read_tsv(path, *, dtype=None, index_col=None):
    """Read a TSV written by :func:`write_tsv` (or any BIDS TSV), exactly.

    Only ``n/a`` (and an empty cell) is read as missing: text such as
    ``None``, ``NA``, ``null`` or ``nan`` stays text, unlike pandas' default
    reader.

    Parameters
    ----------
    path : str or Path
    dtype : dict, optional
        Column -> dtype, e.g. ``{"trial_type": str}`` for columns that must
        stay text even when every value looks like a number.
    index_col : int or str, optional

    Returns
    -------
    pandas.DataFrame
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    return pd.read_csv(path, sep="\t", na_values=[MISSING, ""], keep_default_na=False,
                       dtype=dtype, index_col=index_col)


def write_json(obj, path, *, overwrite=False):
    """Write ``obj`` as indented JSON, atomically (NaN written as ``null``)."""
    return atomic_write_json(path, _jsonable(obj), overwrite=overwrite)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def nifti_bytes(img, path):
    """The bytes of a nibabel image for ``path`` (gzip-compressed, reproducibly, for ``.gz``)."""
    name = Path(path).name
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise OutputNameError(f"A NIfTI path must end in .nii or .nii.gz, but got {path}.")
    data = img.to_bytes()
    if name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return data


def write_nifti(img, path, *, overwrite=False):
    """Write a nibabel image atomically (``.nii`` or ``.nii.gz``); refuse to overwrite."""
    return atomic_write_bytes(path, nifti_bytes(img, path), overwrite=overwrite)


class _Cached:
    """A payload computed once (bytes, or a callable returning bytes)."""

    def __init__(self, data):
        self._data, self._value = data, None

    def __call__(self):
        if self._value is None:
            self._value = self._data() if callable(self._data) else self._data
        return self._value


class OutputSet:
    """A set of files written together: every target is checked before the first is written.

    Use it wherever one call or command writes several files: collisions
    between targets, and existing files when ``overwrite`` is False, are
    refused before anything is written, so a refusal leaves the folder as it
    was. Writing is all-or-nothing too: every payload is rendered and written
    to a temporary file beside its target first; only when all of them are
    written are they renamed into place (files they replace, with
    ``overwrite``, are kept aside until then). A failure on the way (an image
    that cannot be built, a full disk) removes what this call wrote, restores
    what it replaced and removes the folders it created.

    Parameters
    ----------
    out_dir : str or Path
    overwrite : bool, default=False

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> from llmfmri.io import OutputSet
    >>> out = OutputSet(tempfile.mkdtemp())
    >>> _ = out.add_tsv("networks.tsv", pd.DataFrame({"task": ["a"], "n_units": [3]}))
    >>> [p.name for p in out.write()]
    ['networks.tsv']
    """

    def __init__(self, out_dir, *, overwrite=False):
        self.out_dir = Path(out_dir)
        self.overwrite = bool(overwrite)
        self._items = {}

    def __len__(self):
        return len(self._items)

    def _target(self, name):
        path = Path(name)
        path = path if path.is_absolute() else self.out_dir / path
        key = str(path).lower()
        if key in self._items:
            raise OutputNameError(
                f"Two outputs of this call would both be written to {path}; this is a name "
                "collision (see llmfmri.io.check_unique_labels)."
            )
        return path, key

    def add(self, name, data, *, same_ok=False):
        """Plan ``data`` (bytes, or a callable returning bytes) for ``out_dir/name``.

        With ``same_ok``, an existing file with exactly these bytes is no conflict
        (it is left as it is), e.g. a design matrix shared by several calls.
        """
        path, key = self._target(name)
        if same_ok:
            data = _Cached(data)
        self._items[key] = (path, data, same_ok)
        return path

    def add_text(self, name, text, *, same_ok=False):
        return self.add(name, lambda: text.encode("utf-8"), same_ok=same_ok)

    def add_tsv(self, name, table, *, index=False, float_format=None, same_ok=False):
        """Plan a TSV (see :func:`write_tsv`)."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"table must be a DataFrame, but got {type(table).__name__}.")
        return self.add(name, lambda: table.to_csv(
            sep="\t", na_rep=MISSING, lineterminator="\n", index=index,
            float_format=float_format,
        ).encode("utf-8"), same_ok=same_ok)

    def add_json(self, name, obj):
        return self.add(name, lambda: (json.dumps(_jsonable(obj), indent=2, default=str)
                                       + "\n").encode("utf-8"))

    def add_nifti(self, name, img):
        """Plan a NIfTI image (or a callable returning one)."""
        path = self.out_dir / name
        return self.add(name, lambda: nifti_bytes(img() if callable(img) else img, path))

    def paths(self):
        return [p for p, _, _ in self._items.values()]

    def _unchanged(self, path, data, same_ok):
        return same_ok and path.is_file() and path.read_bytes() == data()

    def check(self):
        """Refuse existing targets (unless ``overwrite``) before anything is written."""
        if not self.overwrite:
            existing = [p for p, data, same in self._items.values()
                        if p.exists() and not self._unchanged(p, data, same)]
            if existing:
                more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
                raise FileExistsError(
                    f"{existing[0]} already exists{more}; pass overwrite=True (CLI: "
                    "--overwrite) to replace, or choose another output folder."
                )
        return self

    def write(self):
        """Check every target, then write them all or none; return the paths written."""
        self.check()
        created = _make_dirs(self.out_dir)
        staged, placed, kept_aside = [], [], []
        try:
            for path, data, same_ok in self._items.values():
                if not self.overwrite and self._unchanged(path, data, same_ok):
                    continue
                payload = data() if callable(data) else data
                check_writable(path, overwrite=self.overwrite)
                created += _make_dirs(path.parent)
                staged.append((_stage(path, payload), path))
            for tmp, path in staged:  # everything is on disk: rename into place
                if path.exists() or path.is_symlink():
                    check_writable(path, overwrite=self.overwrite)
                    fd, aside = tempfile.mkstemp(prefix=f".{path.name}.old-", dir=path.parent)
                    os.close(fd)
                    aside = Path(aside)
                    os.replace(path, aside)
                    kept_aside.append((aside, path))
                os.replace(tmp, path)
                placed.append(path)
        except BaseException:
            for tmp, _ in staged:
                if tmp.exists():
                    tmp.unlink()
            for path in placed:
                if path.exists():
                    path.unlink()
            for aside, path in reversed(kept_aside):
                os.replace(aside, path)
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    pass
            raise
        for aside, _ in kept_aside:
            aside.unlink()
        return placed


def _make_dirs(folder):
    """Create ``folder`` and its missing parents; return the ones created (outermost first)."""
    folder = Path(folder)
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    missing.reverse()
    for f in missing:
        f.mkdir(exist_ok=True)
    return missing


def _stage(path, payload):
    """Write ``payload`` to a temporary file beside ``path`` (fsynced); return its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        new_file_mode(tmp)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)
