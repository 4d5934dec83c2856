"""The web layer's wiring: trusted proxies, body limits, sign-in, CSRF, security headers, refusals, blueprints."""
import time

from flask import Flask, g, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

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

KB, MB = 1024, 1024 * 1024
# The largest body each route reads, checked against Content-Length before any of it is read: small for forms
# without files, large only where files are sent. Every other route takes DEFAULT_BODY.
DEFAULT_BODY = 2 * MB  # a form: a 50,000-character narrative, notes on every criterion, a drawn signature
BODY_LIMITS = {"auth.login": 16 * KB, "api.enrol": 16 * KB, "auth.password": 16 * KB, "api.push": 32 * MB,
               "api.upload_part": 8 * MB + 64 * KB}
UPLOADS = ("evidence.create", "evidence.revise", "transfers.upload")  # MAX_CONTENT_LENGTH: the largest file

# htmx 2 runs without inline script or eval; styles come from our own stylesheet only.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
STATUS = {"forbidden": 403, "not_found": 404, "conflict": 409}


class SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Return whether the session cookie must only travel over HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def init_app(app: Flask) -> None:
    """Wire the web layer into the app."""
    if app.config.get("TRUSTED_PROXIES"):  # believe X-Forwarded-For and -Proto from this many proxies, no more
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.session_interface = SessionInterface()
    app.before_request(_limit_body)  # before CSRF, whose check reads the form
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)
    app.before_request(_start_clock)
    app.after_request(_headers)
    app.context_processor(lambda: {"url_rules": _endpoints(app)})
    app.register_error_handler(Refusal, _refused)
    app.register_error_handler(CSRFError, _csrf_failed)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.extensions["storage"] = storage_from_config(app.config, app.instance_path)
    app.extensions["read_cache"] = ReadCache(app.config.get("READ_CACHE_SIZE", 512))
    for module in (auth, home, caseload, portfolio, evidence, assessment, files, admin, quality, grants, inspection,
                   transfers, devices, conflicts, api):
        app.register_blueprint(module.bp)
    # One app-wide check holds every EQA request to its grant, including blueprints added later.
    app.before_request(inspection.guard)
    if app.config.get("FIELD_MODE"):  # a field device: the Sync page, the status on every page, background sync
        from . import syncing_device

        syncing_device.init_app(app)


def _endpoints(app: Flask) -> frozenset[str]:
    """Return the app's endpoint names (computed once), so pages can link only to what exists."""
    if "endpoints" not in app.extensions:
        app.extensions["endpoints"] = frozenset(rule.endpoint for rule in app.url_map.iter_rules())
    return app.extensions["endpoints"]


def _start_clock() -> None:
    g.started = time.perf_counter()


def _limit_body() -> None:
    """Set the largest body this route reads; a larger one is refused (413) before it is read."""
    endpoint = request.endpoint or ""
    if endpoint in UPLOADS:
        return  # MAX_CONTENT_LENGTH, the largest file; each field of the form is held to MAX_FORM_MEMORY_SIZE
    request.max_content_length = BODY_LIMITS.get(endpoint, DEFAULT_BODY)
    # Refused from the header at once, before any other check (the API's headers, CSRF) could answer otherwise.
    if (request.content_length or 0) > request.max_content_length:
        raise RequestEntityTooLarge()


def _headers(response):  # noqa: ANN001, ANN202
    if "started" in g:  # how long the server spent, for browsers' dev tools and the page benchmark
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "geolocation=(), microphone=(self), camera=(self)")
    response.vary.add("HX-Request")
    if request.endpoint != "static" and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"  # pages name people: no copy left in a shared browser
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _refused(refusal: Refusal):  # noqa: ANN202
    """Show a refusal that reached the top as a page with its message and the right status."""
    status = STATUS.get(refusal.kind, 400)
    return render_template("error.html", title="Not allowed" if status == 403 else "Not found" if status == 404
                           else "Cannot do that", message=refusal.message), status


def _too_large(error: RequestEntityTooLarge):  # noqa: ANN202
    """Say how much a form may send (the page's limit), rather than Werkzeug's bare 413 page."""
    if request.path.startswith("/api/"):
        return api.too_large(error)
    limit = request.max_content_length or 0
    field = request.max_form_memory_size or 0
    words = (f"This form sends at most {limit / MB:g} MB" if limit and limit < MB * 64 else
             f"Each field of this form holds at most {field / MB:g} MB, and each file has its own limit")
    return render_template("error.html", title="Too large to send",
                           message=f"{words}, and what was sent is larger, so none of it was saved. Go back, "
                                   "shorten the text or choose a smaller file, and send it again."), 413


def _csrf_failed(error: CSRFError):  # noqa: ANN202
    return render_template("error.html", title="Form expired",
                           message="This form has expired or was sent from elsewhere. Go back, reload the page "
                                   "and try again."), 400
