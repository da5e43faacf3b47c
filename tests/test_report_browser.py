"""The report in a real browser: headless Chromium loads it from file:// without errors.

Needs the Debian ``chromium`` and ``chromium-driver`` packages (``make install`` installs them);
skipped where they are absent.  The driver path is given explicitly, so selenium-manager never
looks for (or downloads) a driver.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mva.report import write_report

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

CONFIG = """\
task: classification
data:
  signal:     {files: [ex/data/toy.root], tree: TreeS}
  background: {files: [ex/data/toy.root], tree: TreeB, weight: weight}
  features: [var1, var2, var3, "var4 * (var1 < 2 && var2 > -2)"]
split: {test_fraction: 0.5, seed: 5}
methods:
  fisher: {type: linear}
evaluation: {formats: [png]}
"""

ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--window-size=1280,900")


def _mva_command() -> list[str]:
    exe = Path(sys.executable).with_name("mva")
    return [str(exe)] if exe.exists() else [sys.executable, "-c",
                                            "from mva.cli import main; main()"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A comparison report of a small run with a copy of itself: plots and the ROC overlay."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"headless Chromium not installed ({', '.join(missing)} missing; "
                    "apt-get install chromium chromium-driver)")
    base = tmp_path_factory.mktemp("browser_run")
    mva = _mva_command()
    subprocess.run([*mva, "example", "classification", "-n", "600", "--output", "ex"],
                   cwd=base, check=True, capture_output=True)
    (base / "config.yaml").write_text(CONFIG)
    done = subprocess.run([*mva, "train", "config.yaml", "--output", "run", "--quiet"], cwd=base,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shutil.copytree(base / "run", base / "rerun")
    return write_report([base / "run", base / "rerun"])


@pytest.fixture(scope="module")
def loaded(report: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What the browser saw: images, console log, resources, page width."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    try:
        driver.set_page_load_timeout(20)
        driver.get(report.as_uri())
        deadline = time.monotonic() + 10
        while driver.execute_script("return document.readyState") != "complete":
            assert time.monotonic() < deadline, "page did not finish loading"
            time.sleep(0.05)
        images = driver.execute_script(
            "return Array.from(document.images).map(i => "
            "({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}));")
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name);")
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];")
        title = driver.title
        log = driver.get_log("browser")
    finally:
        driver.quit()
    return {"images": images, "resources": resources, "widths": widths, "title": title,
            "log": log}


def test_no_console_errors(loaded: dict[str, Any]) -> None:
    severe = [e for e in loaded["log"] if e.get("level") == "SEVERE"]
    assert severe == []


def test_every_image_decodes(loaded: dict[str, Any], report: Path) -> None:
    n_plots = len(list((report.parent / "plots").glob("*.png")))
    # the run's plots and the ROC comparison figure
    assert len(loaded["images"]) == n_plots + 1 > 1
    for img in loaded["images"]:
        assert img["complete"] is True, img["alt"]
        assert img["w"] > 0 and img["h"] > 0, img["alt"]


def test_nothing_is_fetched_and_the_page_fits(loaded: dict[str, Any]) -> None:
    assert all(r.startswith("data:") for r in loaded["resources"]), loaded["resources"]
    assert loaded["title"].startswith("mva report: run")
    # wide tables scroll inside their box: the page itself never needs a horizontal scrollbar
    scroll_width, window_width = loaded["widths"]
    assert scroll_width <= window_width
