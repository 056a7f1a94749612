"""Writing and reading networks: NIfTI masks and unit tables, named by llmfmri.io."""

from __future__ import annotations

import pandas as pd

from ..exceptions import DataError
from ..io import OutputSet, check_unique_labels, network_stem, read_tsv, table_path
from ._network import Network

__all__ = ["save_networks", "load_network"]


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


def _units_table_near(path):
    """The recording's ``units.tsv`` next to a network file, or one folder up (``analysis/..``)."""
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "units.tsv"
        if candidate.is_file():
            return candidate
    return None


def load_network(path, units=None, *, label=None):
    """Read a network written by :func:`save_networks` (its ``_units.tsv`` or ``_mask.nii.gz``).

    Parameters
    ----------
    path : str or Path
        ``..._units.tsv`` (columns ``site`` and ``index``) or ``..._mask.nii.gz``.
    units : UnitSpace, optional
        The units the network was chosen from. Default: the recording's
        ``units.tsv`` next to the file or in the folder above it (``llmfmri
        run`` writes networks to ``OUT/analysis/`` and the units to
        ``OUT/units.tsv``).
    label : str, optional
        Default: the row of ``networks.tsv`` that names the file, else the file
        name.

    Returns
    -------
    Network
        With its UnitSpace and, when ``networks.tsv`` lists the file, its
        contrast, inference and threshold.

    Raises
    ------
    FileNotFoundError
        A missing file, or no ``units`` and no ``units.tsv`` near the file.
    DataError
        A table without ``site`` and ``index`` columns, or units that are not
        in the unit space (a network of another recording).

    Examples
    --------
    >>> import tempfile
    >>> from llmfmri.units import UnitSpace
    >>> from llmfmri.networks import Network, load_network, save_networks
    >>> space = UnitSpace({"layers.0.resid_post": 4})
    >>> net = Network([1, 0, 1, 0], space, label="medical", alpha=0.05, correction="fdr")
    >>> mask, table, _ = save_networks([net], tempfile.mkdtemp())
    >>> load_network(table, space).mask.tolist()
    [True, False, True, False]
    """
    from pathlib import Path

    import numpy as np

    from ..units import UnitSpace

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Network file {path} does not exist.")
    if units is None:
        found = _units_table_near(path)
        if found is None:
            raise FileNotFoundError(
                f"The network {path} needs the units it was chosen from: pass units=... (a "
                f"UnitSpace), or keep the recording's units.tsv in {path.parent} or "
                f"{path.parent.parent}.")
        units = UnitSpace.from_tsv(found)
    meta = {}
    listing = path.parent / "networks.tsv"
    if listing.is_file():
        rows = read_tsv(listing, dtype={"label": str})
        for row in rows.to_dict(orient="records"):
            if path.name in (row.get("mask"), row.get("units")):
                keys = ("label", "contrast", "inference", "alpha", "correction")
                meta = {k: row.get(k) for k in keys if k in row}
                break
    meta = {k: v for k, v in meta.items() if not (isinstance(v, float) and np.isnan(v))}
    meta["label"] = label or meta.get("label") or path.name
    if path.name.endswith((".nii.gz", ".nii")):
        import nibabel as nib

        mask = units.from_volume(np.asarray(nib.load(str(path)).dataobj)) > 0
        return Network(mask, units, **meta)
    table = read_tsv(path, dtype={"site": str})
    missing = [c for c in ("site", "index") if c not in table.columns]
    if missing:
        raise DataError(f"{path} is not a network's unit table: it lacks {missing} (columns: "
                        f"{list(table.columns)}); give a _units.tsv written by save_networks.")
    where = pd.MultiIndex.from_frame(units.table[["site", "index"]].astype({"index": np.int64}))
    wanted = pd.MultiIndex.from_arrays([table["site"].astype(str),
                                        table["index"].astype(np.int64)])
    cols = where.get_indexer(wanted)
    if (cols < 0).any():
        bad = wanted[int(np.flatnonzero(cols < 0)[0])]
        raise DataError(f"{path} names unit {bad} that is not in the unit space; the network "
                        "comes from another recording or other sites.")
    mask = np.zeros(units.n_units, dtype=bool)
    mask[cols] = True
    return Network(mask, units, **meta)
