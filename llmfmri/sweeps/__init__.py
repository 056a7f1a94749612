"""Sweeps: a paradigm over a grid of cells (models, revisions, seeds, lesions), on Ray or here.

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

A ``lesion`` axis runs cells under a lesion of :mod:`llmfmri.lesions` (units of a
saved network, a saved weight region, a hidden dimension, a low-rank truncation),
each with its matched control draws as cells of their own; ``truncation_matrix``,
``truncation_layer`` and ``rho`` make a numeric truncation grid. The ``behaviour``
step scores perplexity (and task accuracy) under the cell's lesion. A paired group
analysis (``paired="lesion"``) tests lesioned - intact maps across pairs of cells;
:func:`compare_lesion_controls` sets each lesion's behaviour effect against its
control draws.

See ``docs/sweeps.md`` (the file format, and running on an existing Ray cluster).
"""

from ._gather import (PAIRINGS, GroupResult, SweepResults, compare_lesion_controls, gather,
                      group_analysis, pair_cells, save_sweep_tables)
from ._lesions import load_network_file
from ._run import SweepRun, run_cell, run_sweep
from ._spec import AXES, DEFAULT_STEPS, LESION_KINDS, STEPS, Cell, Sweep, load_sweep

__all__ = ["load_sweep", "Sweep", "Cell", "AXES", "STEPS", "DEFAULT_STEPS", "LESION_KINDS",
           "run_sweep", "run_cell", "SweepRun", "gather", "SweepResults", "group_analysis",
           "GroupResult", "PAIRINGS", "pair_cells", "compare_lesion_controls",
           "save_sweep_tables", "load_network_file"]
