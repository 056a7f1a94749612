"""Recording: hooks, per-token capture, streaming resumable storage, and the reader.

Importing this package does not import torch; ``record`` and ``intervene``
import it when called. ``Recording`` (the reader) never needs it.
"""

from ..exceptions import (ContextLengthError, RecordingConflictError, RecordingIncompleteError,
                          RecordingLockedError, StorageWarning)
from ..io import bids_label
from ._hooks import intervene, site_hooks
from ._reader import Recording, RecordingSubset, load_recording
from ._record import record

__all__ = ["record", "Recording", "RecordingSubset", "load_recording", "intervene",
           "site_hooks", "RecordingConflictError", "RecordingIncompleteError",
           "RecordingLockedError", "ContextLengthError", "StorageWarning", "bids_label"]
