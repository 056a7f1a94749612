"""Reports: one self-contained HTML page of an analysis (MNE's ``Report`` pattern).

- :class:`Report`: ``add_*`` methods (figures, tables, maps, networks,
  overlap, repeatability, decoding, provenance...), then
  ``save(path, overwrite=False)``;
- :func:`make_report`: the report of the main job's analysis folder
  (``llmfmri report DIR``; ``llmfmri run`` writes ``OUT/analysis/report.html``),
  with a Lesions section for every lesion study's tables found in the folder
  (:func:`find_lesion_tables`; ``llmfmri report`` on an ``llmfmri lesion``
  output folder);
- :func:`load_analysis`: what an analysis folder holds, read once.

This stage does not import :mod:`llmfmri.recording` (it is torch-free by
contract): it reads a recording folder's units, events and provenance itself
(:class:`RecordingFolder`), and the time courses use a ``Recording`` passed
in (``make_report(DIR, recording=llmfmri.load_recording(OUT))``).

Figures are embedded PNGs and styles are inline: the page makes no request of
any kind (its content security policy forbids it). A report reads maps and
tables, not the recorded frames (the time-course figure reads a few columns).
Nothing here imports torch.

Examples
--------
>>> from llmfmri.reports import make_report
>>> make_report("runs/demo/analysis").save("runs/demo/analysis/report.html")  # doctest: +SKIP
PosixPath('runs/demo/analysis/report.html')
"""

from ._make import (Analysis, RecordingFolder, default_report_path, find_lesion_tables,
                    load_analysis, make_report)
from ._report import REPORT_NAME, SECTIONS, Report, top_units_by_layer

__all__ = ["Report", "make_report", "load_analysis", "Analysis", "RecordingFolder",
           "default_report_path", "find_lesion_tables", "top_units_by_layer", "REPORT_NAME",
           "SECTIONS"]
