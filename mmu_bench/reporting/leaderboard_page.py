"""``leaderboards/index.html``: every board the leaderboard writes, on one static page. Each
board's tables are the Markdown's (``leaderboard.sections``), sortable by any column; the
reference models' rows are shaded; the plots are the PNGs beside the page; a method row links
to the report.html of each run it was built from, where that folder is present.

A page links only where the link leads somewhere: to a run folder under the page's own folder
(relative, so the two can be moved or copied together), or under ``--link-base`` (where the user
publishes the run folders: ``<base>/<the folder under its --runs folder>/report.html``); never to
a path of the machine that built it. Rebuilding from the same results gives the same bytes.
"""

from __future__ import annotations

import html
from pathlib import Path

from mmu_bench.reporting import pages
from mmu_bench.reporting.columns import RUNS, Section, row_label, section_rows
from mmu_bench.reporting.report import REPORT_FILE

INDEX_FILE = "index.html"

REFERENCES = ("Shaded rows: the reference models, scored once per setting: the vanilla model (before unlearning) "
              "and the models that never saw the forget people (oracle; visual oracle, the gold reference where "
              "there is one). Click a column's header to sort by it; click again to reverse.")


def report_link(folder: Path, root: Path, page_dir: Path, link_base: str | None) -> str | None:
    """Where a run's report is reached from the page: under ``link_base`` when given, else
    relative to the page when the run folder sits under the page's folder, else nowhere (None)."""
    if not (folder / REPORT_FILE).is_file():
        return None
    if link_base:
        return f"{link_base.rstrip('/')}/{(folder / REPORT_FILE).resolve().relative_to(root.resolve()).as_posix()}"
    page, report = Path(page_dir).resolve(), (folder / REPORT_FILE).resolve()
    if not report.is_relative_to(page):
        return None
    return report.relative_to(page).as_posix()


def _runs_cell(row: dict, links: dict[str, str | None]) -> str:
    """Links to the reports of the runs a row was built from (``links``: run uid -> href)."""
    found = [f'<a href="{html.escape(links[uid])}">seed {seed}</a>' for seed, uid in row.get(RUNS, []) if links.get(uid)]
    return pages.cell(" ".join(found) or "-", markup=True)


def board(title: str, stem: str, rows: list[dict], board_sections: list[Section], plots: list[str],
          links: dict[str, str | None]) -> str:
    """One board's section of the page: its ``sections`` (``columns.sections``), the plots, and
    links to the runs' reports (``links``: run uid -> href)."""
    parts = [f'<section id="{html.escape(stem)}"><h2>{html.escape(title)}</h2>', f"<p>{pages.prose(REFERENCES)}</p>"]
    for n, section in enumerate(board_sections):
        if section.level > 1:
            parts.append(f"<h{section.level + 1}>{html.escape(section.title)}</h{section.level + 1}>")
        if section.text:
            parts.append(f"<p>{pages.prose(section.text)}</p>")
        if not section.columns:
            continue
        main = n == 0 or section.links  # the main table and the continual one link to the runs' reports
        headers = ["method", "kind", "forget %"] + [c.header for c in section.columns] + (["runs"] if main else [])
        body = []
        for row in section_rows(section, rows):
            cells = [pages.cell(row_label(row)), pages.cell(row["kind"]),
                     pages.cell(f"{row['forget_ratio']:g}", pages.number(row["forget_ratio"]))]
            cells += [pages.cell(pages.prose(c.text(row)), c.sort_value(row), markup=True) for c in section.columns]
            if main:
                cells.append(_runs_cell(row, links))
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
