"""Events TSVs: the per-frame events schema of :mod:`llmfmri.paradigm`, written and read exactly."""

from __future__ import annotations

from ..paradigm import EVENT_DTYPES
from ._files import read_tsv, write_tsv

__all__ = ["read_events", "write_events"]

_TEXT = ("token", "response")


def write_events(events, path, *, overwrite=False):
    """Write an events table as a BIDS ``_events.tsv`` (missing values as ``n/a``), atomically."""
    return write_tsv(events, path, overwrite=overwrite)


def read_events(path):
    """Read an ``_events.tsv`` back exactly.

    Text columns (``trial_type``, ``prompt_id``, ``role``, ``frame_kind``,
    ``token``, ``response``) stay text whatever they hold (``None``, ``NA``,
    ``007``); only ``n/a`` is missing, and a missing ``token`` or ``response``
    is the empty string.

    Returns
    -------
    pandas.DataFrame
    """
    ev = read_tsv(path, dtype=dict(EVENT_DTYPES))
    for col in _TEXT:
        if col in ev:
            ev[col] = ev[col].fillna("")
    return ev
