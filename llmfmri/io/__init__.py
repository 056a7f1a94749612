"""Input and output: the one owner of output names and of writing files.

Every file llmfmri writes is named by :mod:`llmfmri.io._names` (BIDS entities
for recordings, ``contrast-<label>_stat-<z|t|F|p|effect|variance>_statmap``
for maps, ``_desc-<threshold>_mask`` for networks, ``<name>.tsv`` for tables)
and written through these writers: atomically (a temporary name, then a
rename), never over an existing file unless ``overwrite=True``, and, for a
set of outputs (:class:`OutputSet`), with every target checked before the
first one is written. TSVs write missing values as ``n/a`` and read back only
``n/a`` as missing, so text such as ``None`` round-trips.

This subpackage imports neither torch nor matplotlib.
"""

from ._events import read_events, write_events
from ._files import (MISSING, OutputSet, nifti_bytes, read_tsv, write_json, write_nifti,
                     write_tsv)
from ._names import (STAT_LABELS, RunPaths, bids_label, check_unique_labels, contrast_label,
                     design_path, network_stem, stat_label, statmap_path, statmap_stem,
                     table_path)

__all__ = [
    "MISSING",
    "OutputSet",
    "RunPaths",
    "STAT_LABELS",
    "bids_label",
    "check_unique_labels",
    "contrast_label",
    "design_path",
    "network_stem",
    "nifti_bytes",
    "read_events",
    "read_tsv",
    "stat_label",
    "statmap_path",
    "statmap_stem",
    "table_path",
    "write_events",
    "write_json",
    "write_nifti",
    "write_tsv",
]
