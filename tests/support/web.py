"""Helpers for web tests: read tokens and messages out of pages as a browser would."""
import re


def form_token(html: str) -> str:
    """Return the CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)
