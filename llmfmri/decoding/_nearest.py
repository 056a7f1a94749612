"""A task without a network, described by the networks it resembles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..exceptions import DataError
from ..glm import UnitMap
from ..networks import Network, TaskMap

__all__ = ["nearest_networks"]


def nearest_networks(task, networks):
    """Rank networks by their resemblance to a task's map (for a task that defined none).

    Parameters
    ----------
    task : TaskMap, UnitMap or array of shape (n_units,)
        The task's map (z), ideally from held-out runs, or a pattern.
    networks : dict label -> Network, or list of Network
        Networks that know their source map (``stat_map``), e.g. from
        :func:`llmfmri.networks.threshold`.

    Returns
    -------
    pandas.DataFrame
        One row per network, best first: ``network``, ``n_units``,
        ``correlation`` (Pearson r between the task's map and the network's
        source map over all units; NaN when the network has none),
        ``mean_in_network`` (mean of the task's map over the network's units)
        and ``mean_outside``.

    Raises
    ------
    DataError
        When the sizes of the map and the networks differ.

    Examples
    --------
    >>> import numpy as np
    >>> from llmfmri.glm import UnitMap
    >>> from llmfmri.networks import threshold
    >>> from llmfmri.decoding import nearest_networks
    >>> a = threshold(UnitMap(np.r_[6.0, 6.0, np.zeros(18)]), label="a")
    >>> b = threshold(UnitMap(np.r_[np.zeros(18), 6.0, 6.0]), label="b")
    >>> nearest_networks(np.r_[2.0, 1.5, np.zeros(18)], [a, b])["network"].tolist()
    ['a', 'b']
    """
    if isinstance(task, TaskMap):
        values = task.z.values
    elif isinstance(task, UnitMap):
        values = task.values
    else:
        values = np.asarray(task, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise DataError(f"task must hold one value per unit, but has shape {values.shape}.")
    items = list(networks.items()) if hasattr(networks, "items") else \
        [(n.label, n) for n in networks]
    rows = []
    for label, net in items:
        if not isinstance(net, Network):
            raise TypeError(f"Every network must be a Network, but {label!r} is "
                            f"{type(net).__name__}.")
        if net.n_total != values.size:
            raise DataError(f"Network {label!r} is over {net.n_total} units, but the task map "
                            f"has {values.size}.")
        r = np.nan
        if net.stat_map is not None:
            other = np.asarray(net.stat_map.values, dtype=float)
            if values.std() > 0 and other.std() > 0:
                r = float(np.corrcoef(values, other)[0, 1])
        inside = values[net.mask]
        rows.append({"network": label, "n_units": net.n_units, "correlation": r,
                     "mean_in_network": float(inside.mean()) if inside.size else np.nan,
                     "mean_outside": float(values[~net.mask].mean()) if (~net.mask).any()
                     else np.nan})
    df = pd.DataFrame(rows)
    return df.sort_values(["correlation", "mean_in_network"], ascending=False,
                          na_position="last", kind="stable").reset_index(drop=True)
