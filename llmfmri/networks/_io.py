"""Writing networks: NIfTI masks and unit tables, named by llmfmri.io."""

from __future__ import annotations

import pandas as pd

from ..io import OutputSet, check_unique_labels, network_stem, table_path
from ._network import Network

__all__ = ["save_networks"]


def save_networks(networks, out_dir, *, task=None, overwrite=False, table=True, outputs=None):
    """Write each network's mask and unit table, and a ``networks.tsv`` summary.

    For a network labelled ``medical`` thresholded at FDR 0.05:
    ``contrast-medical_desc-fdr0p05_mask.nii.gz`` (uint8 mask in the unit
    volume of :class:`llmfmri.units.UnitSpace`) and
    ``contrast-medical_desc-fdr0p05_units.tsv`` (one row per unit: column,
    site, layer, component, index, stat), named by
    :func:`llmfmri.io.network_stem`. Every target is checked before the
    first is written (:class:`llmfmri.io.OutputSet`).

    Parameters
    ----------
    networks : dict label -> Network, list of Network, or a Network
    out_dir : str or Path
    task : str, optional
        The paradigm, as a ``task-`` entity of every name.
    overwrite : bool, default=False
    table : bool, default=True
        Also write ``networks.tsv`` (one row per network: label, contrast,
        inference, threshold, tail, size, files).
    outputs : llmfmri.io.OutputSet, optional
        Plan the files into this set (for ``out_dir`` = its folder) instead of
        writing them, so that a caller writing more files checks every target
        before the first is written; ``overwrite`` is then the set's.

    Returns
    -------
    list of pathlib.Path
        The files written (or planned, with ``outputs``).

    Raises
    ------
    FileExistsError
        When a target exists and ``overwrite`` is False (nothing is written).
    llmfmri.exceptions.OutputNameError
        When two network labels would share a file name.
    DataError
        For a network without a UnitSpace (no volume layout).

    Examples
    --------
    >>> import tempfile
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.networks import Network, save_networks
    >>> space = UnitSpace({"layers.0.resid_post": 4})
    >>> net = Network([1, 0, 1, 0], space, label="medical", alpha=0.05, correction="fdr")
    >>> for path in save_networks([net], tempfile.mkdtemp()):
    ...     print(path.name)
    contrast-medical_desc-fdr0p05_mask.nii.gz
    contrast-medical_desc-fdr0p05_units.tsv
    networks.tsv
    """
    if isinstance(networks, Network):
        networks = [networks]
    items = list(networks.items()) if hasattr(networks, "items") else \
        [(n.label, n) for n in networks]
    for lab, net in items:
        if not isinstance(net, Network):
            raise TypeError(f"Every network must be a Network, but {lab!r} is "
                            f"{type(net).__name__}.")
    # two labels that differ but share a file name are refused here; the same label and
    # threshold twice is refused by OutputSet (one target, two outputs)
    labels = check_unique_labels([lab for lab, _ in items], what="network label")
    out = OutputSet(out_dir, overwrite=overwrite) if outputs is None else outputs
    planned = []
    rows = []
    for lab, net in items:
        stem = network_stem(labels[str(lab)], net.desc, task=task)
        net._require_units("save")
        mask_name, units_name = f"{stem}_mask.nii.gz", f"{stem}_units.tsv"
        planned.append(out.add_nifti(mask_name, net.to_nifti))
        planned.append(out.add_tsv(units_name, net.to_frame()))
        rows.append({**net.summary(), "label": lab, "mask": mask_name, "units": units_name})
    if table:
        planned.append(out.add_tsv(table_path(out.out_dir, "networks").name, pd.DataFrame(rows)))
    return out.write() if outputs is None else planned
