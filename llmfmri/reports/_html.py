"""The page around a report: inline styles, a content security policy, no request of any kind.

Everything a report shows is inside its one HTML file: figures are PNG
``data:`` URIs, styles are inline, fonts are the reader's own (a system font
stack), and there is no script. The ``Content-Security-Policy`` meta tag
makes the browser refuse any request that would leave the file.
"""

from __future__ import annotations

import base64
import html
import io
import re

__all__ = ["CSP", "STYLE", "page", "figure_html", "table_html", "text_html", "code_html",
           "slug", "png_data_uri"]

#: No source is allowed but inline styles and data: images.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; " \
      "form-action 'none'"

STYLE = """
:root { --ink: #1d1d1f; --muted: #5f6368; --line: #d9dce1; --accent: #b3261e;
        --panel: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #ffffff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
             sans-serif; }
header { padding: 1.4rem 2rem 0.8rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 0.2rem; font-size: 1.55rem; }
header p { margin: 0.1rem 0; color: var(--muted); font-size: 0.9rem; }
nav { position: sticky; top: 0; background: rgba(255, 255, 255, 0.97); z-index: 2;
      border-bottom: 1px solid var(--line); padding: 0.45rem 2rem; }
nav a { color: var(--ink); text-decoration: none; margin-right: 1.1rem; font-size: 0.9rem;
        white-space: nowrap; }
nav a:hover { color: var(--accent); }
main { padding: 0 2rem 2rem; max-width: 1280px; }
section.report-section { padding-top: 0.6rem; border-bottom: 1px solid var(--line); }
h2 { font-size: 1.3rem; margin: 1rem 0 0.5rem; }
h3 { font-size: 1.05rem; margin: 1.1rem 0 0.4rem; }
p.caption, figcaption { color: var(--muted); font-size: 0.88rem; margin: 0.2rem 0 0.8rem; }
figure.report-figure { display: inline-block; vertical-align: top; margin: 0.4rem 1rem 1rem 0; }
figure.report-figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.table-wrap { overflow-x: auto; margin: 0.3rem 0 1rem; }
table.report-table { border-collapse: collapse; font-size: 0.85rem; }
table.report-table th, table.report-table td { border: 1px solid var(--line);
      padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
table.report-table th { background: var(--panel); }
table.report-table .num { text-align: right; font-variant-numeric: tabular-nums;
                          white-space: nowrap; }
pre { background: var(--panel); border: 1px solid var(--line); padding: 0.7rem 0.9rem;
      overflow-x: auto; font-size: 0.82rem; line-height: 1.4; }
details { margin: 0.3rem 0 1rem; }
details > summary { cursor: pointer; color: var(--muted); }
.note { color: var(--muted); font-style: italic; }
footer { padding: 1rem 2rem 2rem; color: var(--muted); font-size: 0.85rem; }
"""


def slug(text):
    """An id for an anchor: ``"Networks & overlap"`` -> ``"sec-networks-overlap"``."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return "sec-" + (s or "section")


def png_data_uri(png):
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_png(fig, dpi=100):
    """PNG bytes of a matplotlib Figure (tight bounding box)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def figure_html(png, *, alt, caption=None, title=None):
    """An embedded figure: ``<figure><img src="data:..."><figcaption>``."""
    head = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (f'{head}<figure class="report-figure"><img alt="{html.escape(alt, quote=True)}" '
            f'src="{png_data_uri(png)}">{cap}</figure>')


def _cell(value, fmt):
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return fmt(value)
    return str(value)


def table_html(df, *, title=None, caption=None, index=False, max_rows=60, float_format=None):
    """A DataFrame as an escaped HTML table (at most ``max_rows`` rows, with a note).

    Numeric columns are right-aligned (class ``num``), text columns left-aligned.
    """
    import pandas as pd

    head = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    n = len(df)
    shown = df.head(max_rows) if max_rows is not None else df
    if index:
        shown = shown.reset_index()
    fmt = float_format or (lambda x: f"{x:.4g}")
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) and not pd.api.types.is_bool_dtype(
        shown[c]) for c in shown.columns]
    cls = [' class="num"' if num else "" for num in numeric]
    header = "".join(f"<th{c}>{html.escape(str(col))}</th>" for col, c in zip(shown.columns, cls))
    rows = "".join(
        "<tr>" + "".join(f"<td{c}>{html.escape(_cell(v, fmt))}</td>" for v, c in zip(row, cls))
        + "</tr>" for row in shown.itertuples(index=False, name=None))
    body = (f'<table class="report-table"><thead><tr>{header}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")
    more = (f'<p class="note">First {max_rows} of {n} rows.</p>'
            if max_rows is not None and n > max_rows else "")
    cap = f'<p class="caption">{html.escape(caption)}</p>' if caption else ""
    return f'{head}{cap}<div class="table-wrap">{body}</div>{more}'


def text_html(text, *, title=None, css_class=None):
    """Paragraphs of escaped text (blank lines separate them)."""
    head = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    cls = f' class="{css_class}"' if css_class else ""
    paras = [p for p in str(text).split("\n\n") if p.strip()]
    return head + "".join(f"<p{cls}>{html.escape(p)}</p>" for p in paras)


def code_html(text, *, title=None):
    """Preformatted escaped text."""
    head = f"<h3>{html.escape(title)}</h3>\n" if title else ""
    return f"{head}<pre>{html.escape(str(text))}</pre>"


def page(title, subtitle_lines, sections, footer):
    """The whole document: header, navigation, sections, footer."""
    nav = "".join(f'<a href="#{sid}">{html.escape(name)}</a>' for sid, name, _ in sections)
    body = "\n".join(
        f'<section class="report-section" id="{sid}" data-section="{html.escape(name)}">\n'
        f"<h2>{html.escape(name)}</h2>\n" + "\n".join(items) + "\n</section>"
        for sid, name, items in sections)
    sub = "".join(f"<p>{html.escape(line)}</p>" for line in subtitle_lines)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{html.escape(title)}</h1>{sub}</header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>{html.escape(footer)}</footer>\n</body>\n</html>\n"
    )
