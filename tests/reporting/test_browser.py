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


def _as_continual(folder: Path, one_shot: dict, gap: float = -0.1) -> dict:
    """Make the run in ``folder`` (a copy of ``one_shot``'s) a continual run of two requests in
    place: a new run, its continual section naming ``one_shot``'s key, its overall ``gap`` below
    that run's. Returns its results."""
    import uuid

    data = json.loads((folder / "results.json").read_text())
    dims = [d for d in ("visual_forgetting", "textual_retention", "retained_vqa", "general_utility")
            if d in data["normalised"]]
    matrix = {"visual_forgetting:1": [0.9, 0.1, 0.3], "visual_forgetting:2": [0.95, 0.7, 0.2],
              "textual_retention:1": [1.0, 0.9, 0.8], "textual_retention:2": [1.0, 1.0, 0.85]}
    matrix.update({d: [0.9, 0.8, 0.6] for d in dims if d not in ("visual_forgetting", "textual_retention")})
    overall = data["overall"] + gap
    data.update(run_uid=uuid.uuid4().hex, run_key="stream", run_id=data["run_id"] + "-stream", overall=overall)
    data["continual"] = {
        "requests": [["e1"], ["e2"]], "chance": {d: 0.25 for d in dims}, "matrix": matrix,
        "after": [{"request": j, "dimensions": data["dimensions"]["unlearned"], "normalised": data["normalised"],
                   "overall": x, "gold": True} for j, x in ((1, 0.8), (2, overall))],
        "overall_after": [0.8, overall], "reversal": {"per_request": [0.2], "mean": 0.2},
        "early_forgetting": {"per_request": [0.25], "mean": 0.25},
        "erosion": {d: -0.05 for d in dims if d != "visual_forgetting"}, "forgetting": "visual_forgetting",
        "per_person": ["visual_forgetting", "textual_retention"], "split": {"requests": 2, "split_seed": 0},
        "one_shot_key": one_shot["run_key"], "gold_role": "visual_oracle"}
    (folder / "results.json").write_text(json.dumps(data, indent=2, sort_keys=True))
    assert main(["report", str(folder)]) == 0
    return data


def test_a_continual_runs_report_shows_its_matrix_as_a_heatmap_and_its_erosion_curves(browser, report_run, tmp_path):
    from selenium.webdriver.common.by import By

    folder = tmp_path / "continual" / report_run.name
    shutil.copytree(report_run, folder)
    data = _as_continual(folder, json.loads((report_run / "results.json").read_text()))
    browser.get((folder / "report.html").as_uri())
    assert browser.find_element(By.ID, "continual").text == "Continual: 2 requests"
    rows = browser.find_elements(By.CSS_SELECTOR, "#continual-matrix tbody tr")
    assert len(rows) == 3  # before any request, after each of the two
    headers = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#continual-matrix thead th")]
    assert headers[:5] == ["after request", "visual_forgetting:1", "visual_forgetting:2", "textual_retention:1",
                           "textual_retention:2"]
    # each cell coloured by its score: 1.0 the pages' blue, 0.1 nearly white, as the browser draws them
    colour = browser.execute_script(
        "return [...document.querySelectorAll('#continual-matrix tbody tr')].map(r => "
        "[...r.cells].slice(1).map(c => getComputedStyle(c).backgroundColor))")
    assert colour[0][2] == "rgb(42, 111, 219)"  # textual_retention:1 before any request: 1.0
    assert colour[1][0] == "rgb(234, 241, 251)"  # visual_forgetting:1 after request 1: 0.1 (255 - 0.1 (255 - c))
    assert len({c for row in colour for c in row}) > 3
    widths = browser.execute_script(
        "return [...document.querySelectorAll('polyline.erosion')].map(p => p.getBBox().width)")
    # no continual.jsonl beside it: the curves of the dimensions the matrix holds whole (not textual retention)
    assert len(widths) == len(set(data["continual"]["erosion"]) & set(data["continual"]["matrix"])) == 2
    assert all(w > 300 for w in widths) and "textual retention: no curve" in browser.page_source
    index = header_index(browser, "continual-matrix", "visual_forgetting:1")
    click_header(browser, "continual-matrix", index)
    assert numbers(column(browser, "continual-matrix", index)) == [0.1, 0.3, 0.9]
    assert console_errors(browser) == []
    shot = tmp_path / "continual-report.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_leaderboard_page_shows_the_continual_section_and_its_plot(browser, report_run, tmp_path):
    from selenium.webdriver.common.by import By

    runs = tmp_path / "runs"
    shutil.copytree(report_run, runs / report_run.name)
    stream = runs / (report_run.name + "-stream")
    shutil.copytree(report_run, stream)
    one_shot = json.loads((report_run / "results.json").read_text())
    _as_continual(stream, one_shot, gap=-0.125)
    assert main(["leaderboard", "--runs", str(runs), "--output", str(runs / "boards"), "--link-base", ".."]) == 0
    with open(runs / "boards" / "mmu-synth__tiny-llava.csv") as fh:
        board = list(csv.DictReader(fh))
    assert [r["kind"] for r in board].count("continual") == 1
    browser.get((runs / "boards" / "index.html").as_uri())
    heading = browser.find_element(By.XPATH, "//h3[text()='Continual']")
    table = heading.find_element(By.XPATH, "following-sibling::table[1]").get_attribute("id")
    assert column(browser, table, 1) == ["continual"]  # its one row, of its own kind
    assert column(browser, "mmu-synth__tiny-llava-0", 1).count("continual") == 0  # never in the main table
    gap = header_index(browser, table, "gap vs one-shot")
    assert [float(v) for v in column(browser, table, gap)] == pytest.approx([-0.125])  # final overall - the one-shot's
    plot = browser.execute_script(
        "const i = [...document.images].find(i => i.getAttribute('src').endsWith('__continual.png'));"
        "return i && i.complete ? i.naturalWidth : 0")
    assert plot > 0
    assert console_errors(browser) == []
    browser.find_element(By.ID, table).find_element(By.LINK_TEXT, f"seed {one_shot['seed']}").click()
    assert browser.current_url == (stream / "report.html").as_uri()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#continual-matrix tbody tr")) == 3
