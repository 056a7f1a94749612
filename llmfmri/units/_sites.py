"""The site grammar: ``embed`` and ``layers.{i}.{component}``."""

from __future__ import annotations

import re

from ..exceptions import SiteError
from .._utils import did_you_mean

#: Components of a transformer block that every architecture adapter maps.
COMPONENTS = ("resid_post", "attn_out", "mlp_out", "mlp_act")

_SITE_RE = re.compile(r"^layers\.(\d+)\.([A-Za-z_]+)$")


def parse_site(site):
    """Split a site name into ``(layer, component)``.

    ``embed`` gives ``(-1, "embed")``.

    Parameters
    ----------
    site : str
        ``"embed"`` or ``"layers.{i}.{component}"`` with component one of
        ``resid_post``, ``attn_out``, ``mlp_out``, ``mlp_act``.

    Returns
    -------
    layer : int
    component : str

    Examples
    --------
    >>> from llmfmri.units import parse_site
    >>> parse_site("layers.3.mlp_act")
    (3, 'mlp_act')
    >>> parse_site("embed")
    (-1, 'embed')
    """
    if not isinstance(site, str):
        raise SiteError(f"A site must be a string such as 'layers.0.resid_post', but got {site!r}.")
    if site == "embed":
        return -1, "embed"
    m = _SITE_RE.match(site)
    if m is None:
        raise SiteError(
            f"Site {site!r} does not follow the grammar 'embed' or 'layers.{{i}}.{{component}}' "
            f"with component one of {', '.join(COMPONENTS)}."
            + did_you_mean(site, ["embed"] + [f"layers.0.{c}" for c in COMPONENTS])
        )
    layer, component = int(m.group(1)), m.group(2)
    if component not in COMPONENTS:
        raise SiteError(
            f"Unknown component {component!r} in site {site!r}; known components are "
            f"{', '.join(repr(c) for c in COMPONENTS)}." + did_you_mean(component, COMPONENTS)
        )
    return layer, component


def format_site(layer, component):
    """Inverse of :func:`parse_site`.

    Examples
    --------
    >>> from llmfmri.units import format_site
    >>> format_site(2, "resid_post")
    'layers.2.resid_post'
    """
    if component == "embed":
        return "embed"
    return f"layers.{int(layer)}.{component}"
