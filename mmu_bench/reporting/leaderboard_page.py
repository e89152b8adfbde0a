"""``leaderboards/index.html``: every board the leaderboard writes, on one static page. Each
board's tables are the Markdown's (``leaderboard.sections``), sortable by any column; the
reference models' rows are shaded; the plots are the PNGs beside the page; a method row links
to the report.html of each run it was built from, where that folder is present.

Links are relative to the page, so a folder holding both the page and the runs can be moved or
copied elsewhere. Rebuilding from the same results gives the same bytes.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from mmu_bench.reporting import pages
from mmu_bench.reporting.leaderboard import RUNS, Dimension, row_label, section_rows, sections
from mmu_bench.reporting.report import REPORT_FILE

INDEX_FILE = "index.html"

REFERENCES = ("Shaded rows: the reference models, scored once per setting: the vanilla model (before unlearning) "
              "and the models that never saw the forget people (oracle; visual oracle, the gold reference where "
              "there is one). Click a column's header to sort by it; click again to reverse.")


def _runs_cell(row: dict, folders: dict[str, Path], page_dir: Path) -> str:
    """Links to the reports of the runs a row was built from (those present on disk)."""
    links = []
    for seed, uid in row.get(RUNS, []):
        folder = folders.get(uid)
        if folder is not None and (folder / REPORT_FILE).is_file():
            href = Path(os.path.relpath(folder / REPORT_FILE, page_dir)).as_posix()
            links.append(f'<a href="{html.escape(href)}">seed {seed}</a>')
    return pages.cell(" ".join(links) or "-", markup=True)


def board(title: str, stem: str, rows: list[dict], dims: list[Dimension], information: list[tuple[str, str]],
          plots: list[str], folders: dict[str, Path], page_dir: Path) -> str:
    """One board's section of the page."""
    parts = [f'<section id="{html.escape(stem)}"><h2>{html.escape(title)}</h2>', f"<p>{pages.prose(REFERENCES)}</p>"]
    for n, section in enumerate(sections(rows, dims, information)):
        if section.level > 1:
            parts.append(f"<h{section.level + 1}>{html.escape(section.title)}</h{section.level + 1}>")
        if section.text:
            parts.append(f"<p>{pages.prose(section.text)}</p>")
        if not section.columns:
            continue
        main = n == 0
        headers = ["method", "kind", "forget %"] + [c.header for c in section.columns] + (["runs"] if main else [])
        body = []
        for row in section_rows(section, rows):
            cells = [pages.cell(row_label(row)), pages.cell(row["kind"]),
                     pages.cell(f"{row['forget_ratio']:g}", pages.number(row["forget_ratio"]))]
            cells += [pages.cell(pages.prose(c.text(row)), c.sort_value(row), markup=True) for c in section.columns]
            if main:
                cells.append(_runs_cell(row, folders, page_dir))
            kind = ' class="reference"' if row["kind"] == "reference" else ""
            body.append(f"<tr{kind}>" + "".join(cells) + "</tr>")
        parts.append(pages.table(headers, body, f"{stem}-{n}"))
    parts += [f'<figure><img src="{html.escape(p)}" alt="{html.escape(title)}: {html.escape(p)}"></figure>' for p in plots]
    return "\n".join(parts) + "\n</section>"


def render(boards: list[tuple[str, str, str]]) -> str:
    """The page of the boards: (stem, title, its section from ``board``) each."""
    toc = "".join(f'<li><a href="#{html.escape(stem)}">{html.escape(title)}</a></li>' for stem, title, _ in boards)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>mmu-bench leaderboards</title>\n'
            f"<style>{pages.STYLE}</style></head><body>\n<h1>mmu-bench leaderboards</h1>\n"
            f"<p>The tables of the .md files beside this page (the .csv files have every measure), one board per "
            f"benchmark and model.</p>\n<ul>{toc}</ul>\n"
            + "\n".join(b for _, _, b in boards) + f"\n<script>{pages.SORT_SCRIPT}</script>\n</body></html>\n")
