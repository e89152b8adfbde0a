"""What the HTML pages (a run's report.html, the leaderboard's index.html) share: the style, a
sortable table, and how data and text enter a page safely. Pages are static files: no server,
no network, no external script; they open from disk.

Text from results enters a page either escaped into the markup (``html.escape``) or as JSON in
a ``<script type="application/json">`` read through ``textContent``; never as markup.
"""

from __future__ import annotations

import html
import json
import math
import re

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 1em; }
td, th { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }
th { background: #f3f3f3; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
tr.reference td { background: #fff8e1; }
.bar { display: inline-block; width: 60px; height: 8px; background: #eee; }
.bar span { display: block; height: 8px; background: #2a6fdb; }
.ok { color: #17803d; } .bad { color: #b42318; }
figure { display: inline-block; margin: 0 1em 1em 0; }
pre { background: #f7f7f7; padding: .5em; max-height: 20em; overflow: auto; }
"""

# Click a header of a table.sortable: its rows sort by that column (numbers by their data-sort
# value, the rest by text; cells with nothing to sort by stay last); click again to reverse.
SORT_SCRIPT = """
(function () {
  for (const table of document.querySelectorAll("table.sortable")) {
    const heads = table.tHead.rows[0].cells;
    for (let i = 0; i < heads.length; i++) {
      heads[i].addEventListener("click", () => {
        const ascending = heads[i].getAttribute("aria-sort") !== "ascending";
        for (const h of heads) h.removeAttribute("aria-sort");
        heads[i].setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const body = table.tBodies[0];
        const key = row => {
          const cell = row.cells[i];
          if (cell.dataset.sort !== undefined) return cell.dataset.sort === "" ? null : Number(cell.dataset.sort);
          const text = cell.textContent.trim();
          return text === "" || text === "-" ? null : text;
        };
        const rows = [...body.rows].map((row, n) => [key(row), n, row]);
        rows.sort((a, b) => {
          if (a[0] === null || b[0] === null) return (a[0] === null) - (b[0] === null) || a[1] - b[1];
          const order = typeof a[0] === "number" && typeof b[0] === "number" ? a[0] - b[0]
            : String(a[0]).localeCompare(String(b[0]));
          return (ascending ? order : -order) || a[1] - b[1];
        });
        for (const [, , row] of rows) body.appendChild(row);
      });
    }
  }
})();
"""


def script_json(data) -> str:
    """JSON safe inside a <script> element: no ``</script>`` or comment can end it early."""
    return (json.dumps(data, ensure_ascii=False, sort_keys=True)
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def number(value) -> float | None:
    """``value`` as a finite float, else None (text, booleans, NaN: nothing to sort by)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def fmt(value) -> str:
    """A cell's text, escaped: numbers to three decimals, NaN (not measured) as '-'."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.3f}" if number(value) is not None else html.escape(str(value))


def bar(value: float) -> str:
    """A bar for a value in [0, 1]."""
    return f'<span class="bar"><span style="width:{100 * value:.1f}%"></span></span>'


def cell(text: str, sort: float | None = None, markup: bool = False) -> str:
    """A <td> of ``text`` (escaped unless it is ``markup`` already), sorting by ``sort``."""
    attr = "" if sort is None else f' data-sort="{sort!r}"'
    return f"<td{attr}>{text if markup else html.escape(text)}</td>"


def table(headers: list[str], rows: list[str], table_id: str = "") -> str:
    """A sortable table of ``headers`` (text) and ``rows`` (each a ``<tr>`` of cells)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    ident = f" id={table_id}" if table_id else ""
    return f'<table class="sortable"{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def dict_table(rows: list[dict], table_id: str) -> str:
    """A sortable table of ``rows`` (dicts with the same keys); numbers in [0, 1] get a bar."""
    if not rows:
        return ""
    body = []
    for row in rows:
        cells = []
        for value in row.values():
            v = number(value)
            text = fmt(value) + (" " + bar(v) if v is not None and isinstance(value, float) and 0 <= v <= 1 else "")
            cells.append(cell(text, v, markup=True))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return table([str(k) for k in rows[0]], body, table_id)


def prose(text: str) -> str:
    """Escaped text with the Markdown the leaderboard's notes use: `code` and **bold**."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
