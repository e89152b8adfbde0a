"""The run report and the leaderboard page in a real browser: headless Chromium (Debian's
``chromium`` with its ``chromedriver``) driven by Selenium, checking what a person would: the
tables' rows, sorting by a column, filtering the samples, images that load, no console errors,
and a link from the leaderboard to a run's report. Each test saves a screenshot in its
temporary folder.

Skipped, with the reason, where the browser is missing; `.ci/run` installs it and sets
MMU_BENCH_REQUIRE_BROWSER=1, which turns the skip into a failure (README, "Browser tests").
"""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from mmu_bench.cli import main

CHROMIUM = os.environ.get("MMU_BENCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MMU_BENCH_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it comes with pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).is_file():
            return f"{path} not found (Debian: apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _missing()
    if missing:
        if os.environ.get("MMU_BENCH_REQUIRE_BROWSER"):
            pytest.fail(f"browser tests required (MMU_BENCH_REQUIRE_BROWSER) but {missing}")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # no sandbox: CI runs as root; the networking flags: this machine's network is closed
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1800"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def column(driver, table_id: str, index: int) -> list[str | None]:
    """A table's cells in column ``index``, top to bottom: their sort value, else their text."""
    return driver.execute_script(
        "return [...document.getElementById(arguments[0]).tBodies[0].rows].map(r => r.cells[arguments[1]])"
        ".map(c => c.dataset.sort !== undefined ? c.dataset.sort : c.textContent)", table_id, index)


def header_index(driver, table_id: str, text: str) -> int:
    return driver.execute_script(
        "return [...document.getElementById(arguments[0]).tHead.rows[0].cells].findIndex(c => c.textContent === arguments[1])",
        table_id, text)


def numbers(values: list) -> list[float]:
    return [float(v) for v in values if v not in ("", None)]


def images_loaded(driver) -> list[int]:
    """The natural width of every image on the page once loaded (0: broken)."""
    return driver.execute_script("return [...document.images].map(i => i.complete ? i.naturalWidth : 0)")


def click_header(driver, table_id: str, index: int) -> None:
    driver.execute_script("document.getElementById(arguments[0]).tHead.rows[0].cells[arguments[1]].click()",
                          table_id, index)


def test_the_report_renders_sorts_filters_and_shows_its_images(browser, report_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    folder = tmp_path / "copied" / report_run.name  # opened from a copy: nothing points back to where it was made
    shutil.copytree(report_run, folder)
    samples = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    browser.get((folder / "report.html").as_uri())
    assert "ga on mmu-synth" in browser.title

    rows = browser.find_elements(By.CSS_SELECTOR, "#samples tbody tr")
    assert len(rows) == len(samples)
    assert browser.find_element(By.ID, "count").text == f"{len(samples)} of {len(samples)} items"
    widths = images_loaded(browser)
    assert len(widths) == sum(s["modality"] == "image" for s in samples) > 0
    assert all(w > 0 for w in widths)

    dimension = "retained_vqa"
    Select(browser.find_element(By.ID, "f-dimension")).select_by_value(dimension)
    wanted = [s for s in samples if s["dimension"] == dimension]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#samples tbody tr")) == len(wanted) > 0
    browser.find_element(By.ID, "f-changed").click()
    changed = [s for s in wanted if s["output"].strip() != s["vanilla_output"].strip()]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#samples tbody tr")) == len(changed)
    assert browser.find_element(By.ID, "count").text == f"{len(changed)} of {len(samples)} items"

    table_rows = len(browser.find_elements(By.CSS_SELECTOR, "#dimensions tbody tr"))
    index = header_index(browser, "dimensions", "score")
    assert index > 0
    click_header(browser, "dimensions", index)
    ascending = numbers(column(browser, "dimensions", index))
    assert len(ascending) == table_rows > 1 and ascending == sorted(ascending)
    click_header(browser, "dimensions", index)
    assert numbers(column(browser, "dimensions", index)) == sorted(ascending, reverse=True)

    assert console_errors(browser) == []
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_leaderboard_page_sorts_shows_its_plots_and_links_each_run_report(browser, report_run, tmp_path):
    from selenium.webdriver.common.by import By

    runs = tmp_path / "runs"
    shutil.copytree(report_run, runs / report_run.name)
    assert main(["leaderboard", "--runs", str(runs), "--output", str(runs / "boards"), "--link-base", ".."]) == 0
    with open(runs / "boards" / "mmu-synth__tiny-llava.csv") as fh:
        board = list(csv.DictReader(fh))
    browser.get((runs / "boards" / "index.html").as_uri())
    table = "mmu-synth__tiny-llava-0"
    methods = column(browser, table, 0)
    assert methods == [r["method"] for r in board]  # every row, in the board's order
    assert len(browser.find_elements(By.CSS_SELECTOR, f"#{table} tr.reference")) == sum(
        r["kind"] == "reference" for r in board) >= 2

    index = header_index(browser, table, "overall")
    click_header(browser, table, index)
    overall = sorted(board, key=lambda r: float(r["overall_mean"]))
    assert column(browser, table, 0) == [r["method"] for r in overall]
    click_header(browser, table, index)
    assert column(browser, table, 0) == [r["method"] for r in reversed(overall)]

    widths = images_loaded(browser)
    assert len(widths) >= 1 and all(w > 0 for w in widths)  # the plots beside the page
    assert console_errors(browser) == []
    shot = tmp_path / "leaderboard.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    browser.find_element(By.LINK_TEXT, "seed 0").click()
    assert browser.current_url == (runs / report_run.name / "report.html").as_uri()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#samples tbody tr")) > 0
    assert console_errors(browser) == []
