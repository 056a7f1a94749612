"""Report: a self-contained HTML page built section by section (MNE's ``Report`` pattern)."""

from __future__ import annotations

import datetime as _dt
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .._utils import atomic_write_text, logger
from .._version import __version__
from ..exceptions import DataError
from ._html import code_html, figure_html, figure_png, page, slug, table_html, text_html

__all__ = ["Report", "REPORT_NAME", "SECTIONS"]

#: File name of the main job's report (in ``OUT/analysis``).
REPORT_NAME = "report.html"

#: The sections :func:`make_report` fills, in page order.
SECTIONS = ("Summary", "Paradigm", "Design matrices", "Contrast maps", "Networks", "Overlap",
            "Repeatability", "Decoding", "Lesions", "Time courses", "Provenance", "Command")


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


class Report:
    """A self-contained HTML report: sections of figures, tables and text, then :meth:`save`.

    Figures are embedded as PNG ``data:`` URIs and styles are inline; the page
    loads nothing (no font, script, style sheet or image from anywhere, which
    its content security policy enforces), so it can be mailed or archived as
    one file. Each ``add_*`` method appends to a section (created on first
    use, in call order) and returns the report, so calls chain.

    Parameters
    ----------
    title : str, default="llmfmri report"
    subtitle : str or list of str, optional
        Lines under the title (model, paradigm...).

    Examples
    --------
    >>> import pandas as pd
    >>> from llmfmri.reports import Report
    >>> rep = Report("demo").add_table(pd.DataFrame({"a": [1, 2]}), "A table", section="Data")
    >>> rep.sections
    ['Data']
    >>> "<table" in rep.to_html()
    True
    """

    def __init__(self, title="llmfmri report", *, subtitle=None):
        self.title = str(title)
        self.subtitle = [subtitle] if isinstance(subtitle, str) else list(subtitle or [])
        self._sections = {}

    def __repr__(self):
        n = sum(len(v) for v in self._sections.values())
        return f"<Report {self.title!r}: {len(self._sections)} sections, {n} items>"

    @property
    def sections(self):
        """Section titles, in page order."""
        return list(self._sections)

    def _add(self, section, item, title=None):
        if section is None:  # MNE's default: a section per titled item
            section = title or "Other"
        self._sections.setdefault(str(section), []).append(item)
        return self

    # ------------------------------------------------------------- generic
    def add_html(self, html_text, *, section=None):
        """Append raw HTML (trusted: it is not escaped) to a section."""
        return self._add(section, str(html_text))

    def add_text(self, text, title=None, *, section=None, note=False):
        """Append paragraphs of text (escaped; a blank line separates paragraphs)."""
        return self._add(section, text_html(text, title=title,
                                            css_class="note" if note else None), title)

    def add_code(self, text, title=None, *, section=None):
        """Append preformatted text (a command, a summary)."""
        return self._add(section, code_html(text, title=title), title)

    def add_table(self, table, title=None, *, section=None, caption=None, index=False,
                  max_rows=60):
        """Append a DataFrame as a table (long tables are cut at ``max_rows``, with a note)."""
        if not isinstance(table, pd.DataFrame):
            table = pd.DataFrame(table)
        return self._add(section, table_html(table, title=title, caption=caption, index=index,
                                             max_rows=max_rows), title)

    def add_figure(self, fig, title=None, *, section=None, caption=None, alt=None, dpi=100,
                   close=True):
        """Append a matplotlib Figure (or a drawn Display) as an embedded PNG.

        Parameters
        ----------
        fig : matplotlib Figure or a Display with ``figure_``
        title : str, optional
        section : str, optional
            Default: the title (a section of its own, as in MNE).
        caption : str, optional
        alt : str, optional
            Text alternative of the image (default: the title).
        dpi : int, default=100
        close : bool, default=True
            Close the figure once embedded (reports of many maps stay light).
        """
        figure = getattr(fig, "figure_", fig)
        if not hasattr(figure, "savefig"):
            raise TypeError(f"fig must be a matplotlib Figure or a drawn Display, but got "
                            f"{type(fig).__name__}.")
        png = figure_png(figure, dpi=dpi)
        if close:
            _close(figure)
        return self._add(section, figure_html(png, alt=alt or title or section or "figure",
                                              caption=caption, title=title), title)

    def add_details(self, summary, items, *, section=None):
        """Append items (HTML strings from the other helpers) inside a collapsible block."""
        inner = "\n".join(items)
        return self._add(section, f"<details><summary>{html.escape(summary)}</summary>"
                                  f"{inner}</details>", summary)

    # ---------------------------------------------------------- stage views
    def add_paradigm(self, paradigm, *, section="Paradigm"):
        """The paradigm: its summary (as ``llmfmri validate`` prints it) and its conditions."""
        self.add_code(paradigm.summary(), section=section)
        rows = [{"condition": c.name, "role": c.role, "prompts": len(c.prompts),
                 "description": c.description, "first prompt": c.prompts[0] if c.prompts else ""}
                for c in paradigm.conditions.values()]
        return self.add_table(pd.DataFrame(rows), "Conditions", section=section)

    def add_design_matrices(self, matrices, *, section="Design matrices", caption=None):
        """One figure per design matrix (a dict ``name -> DataFrame`` or a list)."""
        from ..plotting import DesignMatrixDisplay

        items = matrices.items() if hasattr(matrices, "items") else \
            ((f"run {i + 1}", m) for i, m in enumerate(matrices))
        for name, dm in items:
            disp = DesignMatrixDisplay.from_design_matrix(dm, title=str(name)).plot()
            self.add_figure(disp, section=section, alt=f"design matrix {name}")
        if caption:
            self.add_text(caption, section=section, note=True)
        return self

    def add_contrast(self, stat_map, *, threshold=None, title=None, network=None,
                     section="Contrast maps", mosaic=True, glass=True, caption=None):
        """A contrast's maps (layers x units, mosaic, glass network) and its top units by layer.

        Parameters
        ----------
        stat_map : UnitMap or TaskMap
            A z map with its units.
        threshold : float, optional
            Blank units with ``|z| < threshold``.
        title : str, optional
            Default: the contrast.
        network : Network, optional
            The contrast's network, for the units-per-layer table.
        mosaic, glass : bool, default=True
            Also add the slice mosaic and the maximum-intensity projections.
        """
        from ..plotting import GlassDisplay, MosaicDisplay, UnitMapDisplay

        disp = UnitMapDisplay.from_map(stat_map, threshold=threshold, title=title).plot()
        name = disp.title or "map"
        self._add(section, f"<h3>{html.escape(name)}</h3>")
        if caption:
            self.add_text(caption, section=section, note=True)
        self.add_figure(disp, section=section, alt=f"{name}: layers x units")
        if mosaic:
            self.add_figure(MosaicDisplay.from_map(stat_map, threshold=threshold,
                                                   title=title).plot(),
                            section=section, alt=f"{name}: mosaic of layers")
        if glass:
            self.add_figure(GlassDisplay.from_map(stat_map, threshold=threshold,
                                                  title=title).plot(),
                            section=section, alt=f"{name}: maximum-intensity projections")
        table = top_units_by_layer(stat_map, network=network)
        return self.add_details(f"Top units by layer: {name}",
                                [table_html(table, max_rows=None)], section=section)

    def add_networks(self, networks, *, section="Networks", caption=None):
        """The networks together (overlay), their layer profiles and one line each."""
        from ..plotting import LayerProfileDisplay, NetworkOverlayDisplay

        nets = dict(networks) if hasattr(networks, "items") else \
            {n.label: n for n in networks}
        rows = [{"network": k, "units": n.n_units, "of": n.n_total,
                 "fraction": n.n_units / max(n.n_total, 1),
                 "threshold and inference": "; ".join(n.describe().split("; ")[1:])}
                for k, n in nets.items()]
        self.add_table(pd.DataFrame(rows), section=section, caption=caption)
        if any(n.n_units for n in nets.values()):
            self.add_figure(NetworkOverlayDisplay.from_networks(nets).plot(), section=section,
                            alt="networks and their overlap on layers x units")
            self.add_figure(LayerProfileDisplay.from_networks(nets).plot(), section=section,
                            alt="units per layer of each network")
        else:
            self.add_text("Every network is empty: no unit survives the threshold.",
                          section=section, note=True)
        return self

    def add_overlap(self, overlap, p_value=None, *, section="Overlap", caption=None):
        """The overlap matrix (``OverlapMatrix``, a square table, or ``overlap.tsv``)."""
        from ..plotting import plot_overlap

        self.add_figure(plot_overlap(overlap, p_value), section=section,
                        alt="overlap matrix of the networks", caption=caption)
        return self

    def add_repeatability(self, result, *, section="Repeatability", caption=None):
        """Agreement of maps from disjoint runs, within against across tasks."""
        from ..plotting import RepeatabilityDisplay

        table = result.table if hasattr(result, "splits") else pd.DataFrame(result)
        for metric in ("pearson", "dice"):
            if metric in table:
                self.add_figure(RepeatabilityDisplay.from_result(table, metric=metric).plot(),
                                section=section, alt=f"repeatability ({metric})")
        disp = RepeatabilityDisplay.from_result(table, metric="pearson")
        summary = disp.table.rename(columns={"within": "within task r",
                                             "across": "across tasks r"})
        if "dice" in table:
            dice = RepeatabilityDisplay.from_result(table, metric="dice").table
            summary["within task Dice"] = dice["within"].to_numpy()
            summary["across tasks Dice"] = dice["across"].to_numpy()
        return self.add_table(summary, section=section, caption=caption)

    def add_decoding(self, result, *, section="Decoding", caption=None, **kwargs):
        """The confusion matrix and headline numbers of a ``DecodingResult`` (or of a table)."""
        from ..plotting import plot_confusion_matrix

        if isinstance(result, pd.DataFrame):
            from ..plotting import ConfusionMatrixDisplay

            disp = ConfusionMatrixDisplay.from_frame(result, **kwargs).plot()
        else:
            disp = plot_confusion_matrix(result)
        return self.add_figure(disp, section=section, alt="confusion matrix", caption=caption)

    def add_lesion(self, behaviour, summary=None, *, title=None, label=None,
                   section="Lesions", caption=None):
        """A lesion's behaviour against the intact model and its controls (figure and tables).

        Parameters
        ----------
        behaviour : pandas.DataFrame, str or Path
            A lesion study's behaviour table (``lesion-behaviour.tsv``,
            ``weight-lesion-behaviour.tsv``; see
            :class:`llmfmri.plotting.LesionEffectDisplay`).
        summary : pandas.DataFrame, str or Path, optional
            Its ``-summary.tsv``: the lesion against each control distribution
            (effect, spread, empirical p), shown as a table.
        """
        from ..plotting import LesionEffectDisplay

        disp = LesionEffectDisplay.from_table(behaviour, label=label).plot()
        self.add_figure(disp, title, section=section, caption=caption,
                        alt=f"behaviour under the lesion {disp.label!r} and its controls")
        if summary is not None:
            if not isinstance(summary, pd.DataFrame):
                from ..io import read_tsv

                summary = read_tsv(summary)
            if "subset" in summary:
                summary = summary[summary["subset"].astype(str) == "all"]
            cols = [c for c in ("measure", "set", "control", "intact", "lesion", "effect",
                                "control_mean", "control_sd", "n_controls", "z",
                                "p_empirical") if c in summary]
            self.add_table(summary[cols], section=section,
                           caption="The lesion against each control distribution: effect = "
                                   "lesion - intact; control_mean and control_sd: the same "
                                   "effect under the control draws; empirical p = (1 + controls "
                                   "at least as extreme) / (1 + n_controls).")
        return self

    def add_provenance(self, info, *, section="Provenance", title=None):
        """A two-column table of provenance (a dict of name -> value; nested dicts flattened)."""
        rows = [{"item": k, "value": _fmt_value(v)} for k, v in _flatten(info)]
        return self.add_table(pd.DataFrame(rows, columns=["item", "value"]), title,
                              section=section, max_rows=None)

    def add_command(self, command, *, section="Command", title=None):
        """The exact command (or Python call) that made the results."""
        return self.add_code(command, title=title, section=section)

    # ---------------------------------------------------------------- output
    def to_html(self):
        """The report as one self-contained HTML document (a str)."""
        sections, seen = [], set()
        for name, items in self._sections.items():
            sid = slug(name)
            while sid in seen:
                sid += "-x"
            seen.add(sid)
            sections.append((sid, name, items or ['<p class="note">(empty)</p>']))
        when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        footer = (f"Made by llmfmri {__version__} on {when}. This file is self-contained: "
                  "figures are embedded, and it makes no request of any kind.")
        return page(self.title, self.subtitle, sections, footer)

    def _repr_html_(self):
        return self.to_html()

    def save(self, path, *, overwrite=False):
        """Write the report (atomically).

        Parameters
        ----------
        path : str or Path
            An ``.html`` file.
        overwrite : bool, default=False
            Replace an existing file.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        FileExistsError
            When ``path`` exists and ``overwrite`` is False.
        ValueError
            For a path that does not end in ``.html`` (or ``.htm``).
        """
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"A report is an HTML file: path must end in '.html', but got "
                             f"{str(path)!r}.")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass overwrite=True (CLI: "
                                  "--overwrite) to replace it.")
        atomic_write_text(path, self.to_html(), overwrite=overwrite)
        logger.info("report written to %s", path)
        return path


def _flatten(info, prefix=""):
    for key, value in (info or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _flatten(value, prefix=f"{name}.")
        else:
            yield name, value


def _fmt_value(v):
    if isinstance(v, (list, tuple)):
        if len(v) > 8:
            return ", ".join(str(x) for x in v[:3]) + f", ... ({len(v)} in all)"
        return ", ".join(str(x) for x in v)
    if isinstance(v, float):
        return f"{v:.6g}"
    return "n/a" if v is None else str(v)


def top_units_by_layer(stat_map, *, network=None, stat="z"):
    """Per layer (site): units in the network, the largest statistic and where it is.

    Parameters
    ----------
    stat_map : UnitMap or TaskMap
    network : Network, optional
        Adds ``units in network`` per layer.

    Returns
    -------
    pandas.DataFrame
        One row per site: ``layer, component`` (``units in network``),
        ``max z, unit of max, min z, unit of min`` (units by their index in the layer).
    """
    zmap = getattr(stat_map, "z", stat_map)
    if zmap.units is None:
        raise DataError("top_units_by_layer needs a map with units.")
    df = zmap.to_frame("value")
    rows = []
    for site, g in df.groupby("site", sort=False):
        v = g["value"].to_numpy()
        hi, lo = int(np.nanargmax(v)), int(np.nanargmin(v))
        row = {"layer": g["layer"].iat[0], "component": g["component"].iat[0]}
        if network is not None:
            row["units in network"] = int(network.mask[g["column"].to_numpy()].sum())
        row.update({f"max {stat}": v[hi], "unit of max": int(g["index"].iat[hi]),
                    f"min {stat}": v[lo], "unit of min": int(g["index"].iat[lo])})
        rows.append(row)
    return pd.DataFrame(rows)
