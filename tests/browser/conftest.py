"""Browser tests: the real app served over HTTP on 127.0.0.1, driven by a real Chromium, checked by axe-core."""
import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from support.processes import real_clock_env

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def pytest_collection_modifyitems(items):
    """Mark every test in this folder as a browser test."""
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium for the whole run (required in CI, skipped elsewhere when not installed)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed: CI must run the browser tests")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True,
                                              env=real_clock_env())
        yield chromium
        chromium.close()


@pytest.fixture
def backend():
    """Browser flows run on SQLite; the same pages are tested on PostgreSQL through the test client."""
    return "sqlite"


@pytest.fixture
def live_server(app):
    """Serve the app on a free port on 127.0.0.1 in a background thread."""
    app.config["RATELIMIT_ENABLED"] = False
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def page(browser, live_server, tmp_path):
    """A fresh browser page (own cookies) on a tablet-sized screen, pointed at the live server."""
    context = browser.new_context(viewport={"width": 1024, "height": 1366}, base_url=live_server,
                                  accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def check_accessibility(page) -> None:  # noqa: ANN001
    """Fail with the list of axe-core violations on the current page, if there are any."""
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    problems = [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
                f"{', '.join(n['target'][0] for n in v['nodes'][:3])})" for v in result.response["violations"]]
    assert not problems, f"axe-core found violations on {page.url}:\n" + "\n".join(problems)


def sign_in(page, email: str, password: str = "correct horse battery") -> None:  # noqa: ANN001
    """Sign in through the form with the keyboard only."""
    page.goto("/auth/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/")


@pytest.fixture(scope="session", autouse=True)
def _no_stray_profile_dirs():
    """Leave no Chromium profile folders behind."""
    yield
    shutil.rmtree("/tmp/.org.chromium.Chromium", ignore_errors=True)
