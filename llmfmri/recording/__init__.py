"""Recording: hooks, per-token capture, streaming resumable storage, and the reader.

Importing this package does not import torch; ``record`` and ``intervene``
import it when called. ``Recording`` (the reader) never needs it.
"""

from ._hooks import intervene, site_hooks
from ._reader import Recording, load_recording
from ._record import record
from ._store import RecordingConflictError, RecordingIncompleteError, bids_label

__all__ = ["record", "Recording", "load_recording", "intervene", "site_hooks",
           "RecordingConflictError", "RecordingIncompleteError", "bids_label"]
