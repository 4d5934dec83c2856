"""The web layer's wiring: sign-in, CSRF, rate limits, security headers, refusals, blueprints."""
import time

from flask import Flask, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError

from ..errors import Refusal
from ..readcache import ReadCache
from ..storage import storage_from_config
from . import (
    admin,
    api,
    assessment,
    auth,
    caseload,
    conflicts,
    devices,
    evidence,
    files,
    grants,
    home,
    inspection,
    portfolio,
    quality,
    transfers,
)
from .extensions import csrf, htmx, login_manager

# Guessing passwords is slowed where a password is given: endpoint -> (limits, methods, message).
RATE_LIMITS = {
    "auth.login": ("10 per minute;50 per hour", ["POST"], "Too many sign-in attempts. Wait a minute, then try again."),
    "api.enrol": ("10 per minute;50 per hour", None,
                      "Too many sign-in attempts from here. Wait a minute, then try again."),
}

# htmx 2 runs without inline script or eval; styles come from our own stylesheet only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
STATUS = {"forbidden": 403, "not_found": 404}


class SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Return whether the session cookie must only travel over HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def init_app(app: Flask) -> None:
    """Wire the web layer into the app."""
    app.session_interface = SessionInterface()
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    app.before_request(_start_clock)
    app.after_request(_headers)
    app.context_processor(lambda: {"url_rules": _endpoints(app)})
    app.register_error_handler(Refusal, _refused)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.extensions["storage"] = storage_from_config(app.config, app.instance_path)
    app.extensions["read_cache"] = ReadCache(app.config.get("READ_CACHE_SIZE", 512))
    for module in (auth, home, caseload, portfolio, evidence, assessment, files, admin, quality, grants, inspection,
                   transfers, devices, conflicts, api):
        app.register_blueprint(module.bp)
    _rate_limits(app)
    # One app-wide check holds every EQA request to its grant, including blueprints added later.
    app.before_request(inspection.guard)
    if app.config.get("FIELD_MODE"):  # a field device: the Sync page, the status on every page, background sync
        from . import syncing_device

        syncing_device.init_app(app)


def _rate_limits(app: Flask) -> None:
    """Give the app its own limiter and counts (a second app in the same process, such as a field device beside
    its centre, must never reset or share them), and limit the endpoints that take a password."""
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", default_limits=[])
    for endpoint, (limits, methods, message) in RATE_LIMITS.items():
        app.view_functions[endpoint] = limiter.limit(limits, methods=methods, error_message=message)(
            app.view_functions[endpoint])
    app.extensions["rate_limiter"] = limiter


def _endpoints(app: Flask) -> frozenset[str]:
    """Return the app's endpoint names (computed once), so pages can link only to what exists."""
    if "endpoints" not in app.extensions:
        app.extensions["endpoints"] = frozenset(rule.endpoint for rule in app.url_map.iter_rules())
    return app.extensions["endpoints"]


def _start_clock() -> None:
    g.started = time.perf_counter()


def _headers(response):  # noqa: ANN001, ANN202
    if "started" in g:  # how long the server spent, for browsers' dev tools and the page benchmark
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(self), camera=(self)")
    response.vary.add("HX-Request")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _refused(refusal: Refusal):  # noqa: ANN202
    """Show a refusal that reached the top as a page with its message and the right status."""
    status = STATUS.get(refusal.kind, 400)
    return render_template("error.html", title="Not allowed" if status == 403 else "Not found" if status == 404
                           else "Cannot do that", message=refusal.message), status


def _csrf_failed(error: CSRFError):  # noqa: ANN202
    return render_template("error.html", title="Form expired",
                           message="This form has expired or was sent from elsewhere. Go back, reload the page "
                                   "and try again."), 400
