"""The ``openrouter`` connection form in the real Airflow web UI, driven by a headless Chromium.

One stack (api-server, scheduler, dag-processor, triggerer) is shared by the module. The browser is
Debian's headless ``chromium`` (``tests/system/browser.py``).

The screenshot of the filled-in form (taken before the API key is typed) is written to
``test-artifacts/connection-form-openrouter.png`` in the checkout, and its path is printed in the
terminal summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec

from tests.conftest import EMULATOR_API_KEY
from tests.helpers import AIRFLOW_VERSION
from tests.system.browser import headless_chromium, wait_for
from tests.system.conftest import StackFactory, record_artifact
from tests.system.stack import AirflowStack

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "test-artifacts" / "connection-form-openrouter.png"
FAILURE_SCREENSHOT = REPO_ROOT / "test-artifacts" / "connection-form-openrouter-failure.png"
CONN_ID = "openrouter_ui"
APP_TITLE = "Airflow UI test"


@pytest.fixture(scope="module")
def stack(module_airflow_stack_factory: StackFactory) -> AirflowStack:
    return module_airflow_stack_factory(
        name="connection-ui", env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    )


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    with headless_chromium(request, FAILURE_SCREENSHOT) as driver:
        yield driver


def _wait(driver: WebDriver, condition: Any, what: str) -> Any:
    return wait_for(driver, condition, what)


def _section(driver: WebDriver, title: str) -> None:
    """Open a collapsible section of the connection form."""
    _wait(
        driver,
        ec.element_to_be_clickable((By.XPATH, f"//button[normalize-space()={json.dumps(title)}]")),
        f"the {title!r} section",
    ).click()


def _input_labelled(driver: WebDriver, label: str) -> WebElement:
    """The form control that the visible ``<label>`` with text ``label`` belongs to."""
    element = _wait(
        driver,
        ec.visibility_of_element_located((By.XPATH, f"//label[normalize-space()={json.dumps(label)}]")),
        f"a label {label!r}",
    )
    target = element.get_attribute("for")
    assert target, f"label {label!r} is not attached to a form control"
    control: WebElement = driver.find_element(By.ID, target)
    return control


@pytest.mark.skipif(
    AIRFLOW_VERSION < (3, 2),
    reason="before Airflow 3.2 the form is Airflow's standard one (docs/airflow-versions.md)",
)
def test_add_connection_form_in_the_browser(
    stack: AirflowStack, browser: WebDriver, emulator: Any, request: pytest.FixtureRequest
) -> None:
    """Add an ``openrouter`` connection through the UI form, then test the stored connection."""
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    # SimpleAuthManager in all-admins mode: the UI logs in by itself (no login form).
    browser.get(f"{stack.base_url}/connections")
    _wait(
        browser,
        ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Add Connection']")),
        "the 'Add Connection' button",
    ).click()
    _wait(browser, ec.visibility_of_element_located((By.NAME, "connection_id")), "the form").send_keys(
        CONN_ID
    )
    browser.find_element(By.CSS_SELECTOR, "input[role=combobox]").send_keys("OpenRouter")
    _wait(
        browser,
        ec.element_to_be_clickable((By.XPATH, "//*[@role='option'][normalize-space()='OpenRouter']")),
        "the 'OpenRouter' connection type option",
    ).click()

    # The password field, relabelled "API key", masked, with the key placeholder.
    api_key = _input_labelled(browser, "API key")
    assert api_key.get_attribute("name") == "password"
    assert api_key.get_attribute("type") == "password"
    assert api_key.get_attribute("placeholder") == "sk-or-v1-..."
    # The host field, relabelled "Base URL", with the default URL as placeholder.
    base_url = _input_labelled(browser, "Base URL")
    assert base_url.get_attribute("name") == "host"
    assert base_url.get_attribute("placeholder") == "https://openrouter.ai/api/v1"
    # Login, port and schema are hidden; the generic labels do not show.
    shown = {
        label.text.strip() for label in browser.find_elements(By.TAG_NAME, "label") if label.is_displayed()
    }
    assert not shown & {"Login", "Port", "Schema", "Password", "Host"}, shown
    for name in ("login", "port", "schema"):
        assert not [e for e in browser.find_elements(By.NAME, name) if e.is_displayed()], name

    base_url.send_keys(emulator.base_url)
    # The screenshot is taken before the key is typed: it can never show it.
    assert browser.save_screenshot(str(SCREENSHOT)), "screenshot not written"
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record_artifact(request.config, SCREENSHOT)

    # The provider's extra fields (timeout, attribution headers) under "Extra Fields" (opening
    # that section folds "Standard Fields").
    _section(browser, "Extra Fields")
    timeout = _wait(browser, ec.visibility_of_element_located((By.NAME, "element_timeout")), "timeout field")
    assert timeout.get_attribute("value") == "30"
    app_title = _wait(
        browser, ec.visibility_of_element_located((By.NAME, "element_app_title")), "app title field"
    )
    shown = {
        label.text.strip() for label in browser.find_elements(By.TAG_NAME, "label") if label.is_displayed()
    }
    assert "HTTP timeout (seconds)" in shown, shown
    assert any("HTTP-Referer" in text for text in shown), shown
    assert any("X-OpenRouter-Title" in text for text in shown), shown
    app_title.send_keys(APP_TITLE)

    _section(browser, "Standard Fields")
    _wait(browser, ec.visibility_of(api_key), "the API key field")
    api_key.send_keys(EMULATOR_API_KEY)
    browser.find_element(By.XPATH, "//button[normalize-space()='Save']").click()

    # Saved as the hook reads it: host = base URL, password = key, extras under plain names.
    _wait(
        browser,
        lambda _: stack.api("GET", f"/api/v2/connections/{CONN_ID}").status_code == 200,
        f"connection {CONN_ID!r} to be saved",
    )
    saved = stack.api("GET", f"/api/v2/connections/{CONN_ID}").json()
    assert saved["conn_type"] == "openrouter"
    assert saved["host"] == emulator.base_url
    extra = json.loads(saved["extra"] or "{}")
    assert extra.get("app_title") == APP_TITLE, extra
    assert float(extra.get("timeout")) == 30, extra

    # Test the stored connection the way the UI's "Test Connection" does: POST /connections/test
    # without a password, so the api-server reuses the key the form stored and runs the hook's
    # test_connection() against the emulator. (Not by clicking the row's button: Airflow 3.3.2's
    # UI sends "port": 0 for a connection without a port, which the api-server refuses with 400;
    # fixed upstream in apache/airflow#73298.)
    response = stack.api(
        "POST",
        "/api/v2/connections/test",
        json={"connection_id": CONN_ID, "conn_type": "openrouter", "host": emulator.base_url},
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] is True, result
    assert "API key was accepted" in result["message"], result
    assert EMULATOR_API_KEY not in response.text

    # The key shows up in no component log.
    for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
        assert EMULATOR_API_KEY not in stack.log_path(name).read_text(errors="replace"), name
