"""Sweeps: a paradigm over a grid of cells (models, revisions, seeds), on Ray or in one process.

A sweep file (YAML, validated like paradigms with file:line:field errors) names a
paradigm and the axes to cross; every combination is a cell, an independent
recording plus the main job's analysis, written to ``OUT/cells/<label>/`` (a
recording folder in the usual BIDS layout, with ``analysis/`` and ``cell.json``).
:func:`run_sweep` runs the cells that are not complete yet, one after another in
this process or as Ray tasks with the resources the sweep declares (identical
results either way); a failing cell is reported and the others go on; a killed
sweep resumes where it stopped. :func:`gather` reads every cell into one tidy
table and stacks the maps; :func:`group_analysis` is a second-level GLM with the
cells as subjects (one-sample, or a regression on a numeric axis), with FDR and
permutation max-T.

See ``docs/sweeps.md`` (the file format, and running on an existing Ray cluster).
"""

from ._gather import GroupResult, SweepResults, gather, group_analysis, save_sweep_tables
from ._run import SweepRun, run_cell, run_sweep
from ._spec import AXES, STEPS, Cell, Sweep, load_sweep

__all__ = ["load_sweep", "Sweep", "Cell", "AXES", "STEPS", "run_sweep", "run_cell", "SweepRun",
           "gather", "SweepResults", "group_analysis", "GroupResult", "save_sweep_tables"]
