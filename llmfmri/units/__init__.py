"""Unit geometry: (site, layer, index) <-> flat column <-> volume voxel.

:class:`UnitSpace` is the only owner of this geometry, as nilearn's maskers
are for images. It imports neither torch nor matplotlib.
"""

from ._sites import COMPONENTS, SiteError, format_site, parse_site
from ._space import UnitSpace

__all__ = ["UnitSpace", "SiteError", "COMPONENTS", "parse_site", "format_site"]
