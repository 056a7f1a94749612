"""Design matrices: events (in frames) to regressors.

Boxcars by default (token time has no haemodynamics), nilearn HRF kernels as
options, polynomial or cosine drift, and confounds such as token position,
token log-probability or per-prompt intercepts. This stage imports neither
torch nor matplotlib.
"""

from ..exceptions import DesignMatrixError, DesignWarning
from ._checks import check_design_matrix, collinear_groups
from ._design import check_events, events_per_frame, make_design_matrix

__all__ = [
    "make_design_matrix",
    "check_design_matrix",
    "check_events",
    "events_per_frame",
    "collinear_groups",
    "DesignMatrixError",
    "DesignWarning",
]
