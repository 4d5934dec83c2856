"""Helpers for the browser flows: the accessibility checks run on every page, sign-in, and filling the forms."""
import importlib.util
import re
from datetime import date
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect

from tracker.models import User

OUTCOME_1 = "1. Be able to put person-centred values into practice"
OUTCOME_2 = "2. Be able to implement person-centred thinking to deliver personalised services"


def _harness():  # noqa: ANN202
    """This folder's conftest (its helpers are plain functions), loaded by path: the name `conftest` is ambiguous."""
    spec = importlib.util.spec_from_file_location("browser_harness", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_h = _harness()
check_accessibility, _keyboard_sign_in = _h.check_accessibility, _h.sign_in

DUPLICATE_IDS = """() => { const seen = {}; document.querySelectorAll("[id]").forEach(e => seen[e.id] = (seen[e.id] || 0) + 1);
  return Object.keys(seen).filter(k => seen[k] > 1); }"""


def check(page) -> None:  # noqa: ANN001
    """axe-core on the page as it is now, plus what WCAG 2.2 AA asks that axe leaves off by default: target size
    (2.5.8) and unique ids (labels, descriptions and error links point at them)."""
    from axe_playwright_python.sync_playwright import Axe

    check_accessibility(page)
    result = Axe().run(page, options={"runOnly": ["target-size"]}).response
    assert not result["violations"], f"target-size on {page.url}: " + str(
        [n["target"] for v in result["violations"] for n in v["nodes"]])
    assert not (dupes := page.evaluate(DUPLICATE_IDS)), f"duplicate ids on {page.url}: {dupes}"


def sign_in(page, email: str) -> None:  # noqa: ANN001
    """Check the sign-in page, sign in with the keyboard, and check the home page it lands on."""
    page.goto("/auth/login")
    check(page)
    _keyboard_sign_in(page, email)
    expect(page.get_by_role("heading", level=1, name=re.compile("^Hello, "))).to_be_visible()
    check(page)


def email_of(session, candidate) -> str:  # noqa: ANN001
    """The candidate's sign-in email."""
    return session.get(User, candidate.user_id).email


def error_summary(page):  # noqa: ANN001, ANN201
    """The error summary; every link in it must lead to an element on the page."""
    summary = page.get_by_role("alert").filter(has=page.get_by_role("heading", name="There is a problem"))
    expect(summary).to_be_visible()
    for href in summary.get_by_role("link").evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert page.locator(f"[id='{href.removeprefix('#')}']").count() == 1, f"error link {href} leads nowhere"
    return summary


def photo(tmp_path, name: str = "one-page-profile.jpg"):  # noqa: ANN001, ANN201
    """A small JPEG, as a tablet camera would give."""
    path = tmp_path / name
    Image.new("RGB", (320, 240), (190, 170, 140)).save(path, "JPEG")
    return path


def pdf(tmp_path, name: str = "support-plan.pdf"):  # noqa: ANN001, ANN201
    """A minimal PDF document."""
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
    return path


def criterion(page, code: str):  # noqa: ANN001, ANN201
    """The checkbox of a criterion on the evidence form, found by its label."""
    return page.get_by_role("checkbox", name=re.compile(rf"^{re.escape(code)} "))


def open_outcome(page, title: str) -> None:  # noqa: ANN001
    """Open a learning outcome's disclosure on the evidence form."""
    page.locator("summary", has_text=title).click()


def grid_row(page, code: str):  # noqa: ANN001, ANN201
    """A criterion's row in the portfolio grid, found by its row header."""
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=re.compile(rf"^{re.escape(code)} ")))


def status_of(row):  # noqa: ANN001, ANN201
    """The status tag in a grid row's Status cell."""
    return row.get_by_role("cell").first.locator(".tag")


def draw_signature(page) -> None:  # noqa: ANN001
    """Sign on the canvas with the pointer, as a finger would."""
    canvas = page.get_by_role("img", name=re.compile("Signature box"))
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + w * 0.1, y + h * 0.6)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x + w * (0.1 + 0.08 * i), y + h * (0.6 - 0.3 * (i % 2)), steps=3)
    page.mouse.up()


# --- Keyboard ------------------------------------------------------------------------------------------------

FOCUSED = """() => {
  const e = document.activeElement, s = getComputedStyle(e);
  return {tag: e.tagName.toLowerCase(), id: e.id, type: e.type || "", text: (e.textContent || "").trim().slice(0, 60),
          cls: String(e.className || ""),
          visible: (s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== "none"};
}"""


def focused(page) -> dict:  # noqa: ANN001
    """Describe the focused element, failing unless its focus is visible."""
    info = page.evaluate(FOCUSED)
    assert info["tag"] != "body", "focus was lost to the page body"
    assert info["visible"], f"focus is not visible on {info}"
    return info


def tab_to(page, wanted, limit: int = 60) -> dict:  # noqa: ANN001
    """Press Tab until the focused element matches, checking that focus is visible at every stop."""
    info = {}
    for _ in range(limit):
        page.keyboard.press("Tab")
        info = focused(page)
        if wanted(info):
            return info
    raise AssertionError(f"never reached the wanted element by Tab; last stop {info}")


def type_date(page, day: date) -> None:  # noqa: ANN001
    """Type a date into a focused date input, segment by segment in the browser's own order."""
    order = page.evaluate("""() => new Intl.DateTimeFormat(navigator.language).formatToParts(new Date(2000, 10, 22))
                              .map(p => p.type).filter(t => ["day", "month", "year"].includes(t))""")
    parts = {"day": f"{day.day:02d}", "month": f"{day.month:02d}", "year": f"{day.year}"}
    for part in order:
        page.keyboard.type(parts[part])
