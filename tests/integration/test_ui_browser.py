"""The MLflow UI as a person uses it: `mlalgo ui` (what `make ui` runs) in headless Chromium, from
the experiment's run list to the run's sharpe and its equity plot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import free_port, stop, unavailable, wait_for_health

from mlalgo.config import MlflowConfig
from mlalgo.pipeline import run_pipeline
from mlalgo.tracking import Tracker

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 60  # seconds; the UI is a React app that loads its bundle and data lazily
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Debian's Chromium, headless, with a fresh profile, driven by its own chromedriver."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        unavailable(f"{' and '.join(missing)} missing; apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed; it is in the dev extra")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-quic",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(arg)
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def ui(tmp_path: Path, browser, make_short_config):
    """The short default pipeline in a fresh SQLite store, and `mlalgo ui` serving it."""
    (tmp_path / "mlflow.yaml").write_text("tracking_uri: sqlite:///mlruns.db\nexperiment: ui\n")
    cfg = make_short_config(tmp_path / "models")
    tracker = Tracker(MlflowConfig(tracking_uri="sqlite:///mlruns.db", experiment="ui"), tmp_path)
    result = run_pipeline(cfg, tracker=tracker, root=ROOT)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    log = (tmp_path / "ui.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlalgo.cli",
            "ui",
            "--port",
            str(port),
            "--mlflow-config",
            str(tmp_path / "mlflow.yaml"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            base, proc, "mlalgo ui", lambda: (tmp_path / "ui.log").read_text(errors="replace")
        )
        yield base, cfg, result
    finally:
        stop(proc)
        log.close()


def test_a_person_finds_the_run_its_sharpe_and_its_equity_plot(ui, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, cfg, result = ui
    run_name = f"{cfg.name}-{cfg.hash[:8]}"
    wait = WebDriverWait(browser, WAIT)
    screenshot = tmp_path / "mlflow-ui-run.png"
    try:
        # The experiment's run list; the run is listed under its name.
        browser.get(f"{base}/#/experiments/{result.experiment_id}/runs")
        wait.until(
            ec.element_to_be_clickable((By.XPATH, f"//a[normalize-space()='{run_name}']"))
        ).click()
        wait.until(ec.url_contains(f"/runs/{result.run_id}"))

        # The run's overview lists its metrics; sharpe shows the value the pipeline returned.
        value_cell = wait.until(
            ec.visibility_of_element_located(
                (
                    By.XPATH,
                    "//div[@role='row'][.//a[normalize-space()='sharpe']]/div[@role='cell'][2]",
                )
            )
        )
        assert float(value_cell.text) == pytest.approx(result.metrics["sharpe"])

        # The artifacts tab: open plots/ and the equity plot, which is displayed as an image.
        wait.until(
            ec.element_to_be_clickable(
                (By.XPATH, "//button[@role='tab'][normalize-space()='Artifacts']")
            )
        ).click()
        for name in ("plots", "equity.png"):
            wait.until(
                ec.element_to_be_clickable(
                    (By.CSS_SELECTOR, f"[data-testid='artifact-tree-node'][artifact-name='{name}']")
                )
            ).click()
        image = wait.until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, "img[alt='plots/equity.png']"))
        )
        wait.until(
            lambda d: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", image
            )
        )
        assert image.size["width"] > 200
        assert image.size["height"] > 100
        assert f"/runs/{result.run_id}/artifacts" in browser.current_url
    finally:
        browser.save_screenshot(str(screenshot))  # also on failure: what the page showed

    shot = screenshot.read_bytes()
    assert shot.startswith(PNG)
    assert len(shot) > 20_000  # a rendered page with the plot, not a blank frame
