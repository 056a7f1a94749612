"""Design matrices: events (in frames) to regressors.

Boxcars by default (token time has no haemodynamics), nilearn HRF kernels as
options, polynomial or cosine drift, and confounds such as token position,
token log-probability or per-prompt intercepts. This stage imports neither
torch nor matplotlib.
"""

from ._checks import DesignMatrixError, check_design_matrix, collinear_groups
from ._design import DesignWarning, make_design_matrix

__all__ = [
    "make_design_matrix",
    "check_design_matrix",
    "collinear_groups",
    "DesignMatrixError",
    "DesignWarning",
]
