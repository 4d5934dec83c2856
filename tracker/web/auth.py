"""Sign-in and sign-out."""
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_htmx.responses import HTMXResponseClientRedirect
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.orm import joinedload

from ..audit import Actor
from ..db import get_session
from ..models import User
from ..services import people
from .extensions import htmx, login_manager

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."


class SessionUser:
    """The signed-in person, as Flask-Login sees them."""

    is_authenticated, is_active, is_anonymous = True, True, False

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        """Return the id Flask-Login keeps in the session."""
        return str(self.user.id)


@login_manager.user_loader
def load_user(user_id: str) -> SessionUser | None:
    """Load the signed-in person for each request."""
    try:
        user = get_session().get(User, uuid.UUID(user_id), options=[joinedload(User.roles)])
    except ValueError:
        return None
    return SessionUser(user) if user and user.active else None


@login_manager.unauthorized_handler
def unauthorized():  # noqa: ANN201
    """Send a logged-out person to sign in; an htmx request is told to redirect the whole page."""
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if htmx:
        return HTMXResponseClientRedirect(target)
    flash(login_manager.login_message, "info")
    return redirect(target)


def _safe_next(target: str | None) -> str:
    """Return a same-site path to go to after sign-in, never another site."""
    if target and not urlsplit(target).netloc and not urlsplit(target).scheme and target.startswith("/") \
            and not target.startswith("//"):
        return target
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():  # noqa: ANN201
    """Show the sign-in form and sign a person in."""
    error, email = None, request.form.get("email", "").strip()
    if request.method == "POST":
        user = people.find_user(get_session(), email)
        if user and user.active and people.verify_password(user, request.form.get("password", "")):
            login_user(SessionUser(user))
            return redirect(_safe_next(request.args.get("next")))
        error = "The email address or password is not right."
    return render_template("auth/login.html", error=error, email=email), 200 if error is None else 401


@bp.post("/logout")
@login_required
def logout():  # noqa: ANN201
    """Sign out."""
    logout_user()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


def me() -> User:
    """Return the signed-in person's account."""
    return current_user.user


def actor() -> Actor:
    """Return the signed-in person as the actor for services; on a field device, on the centre's day."""
    days = current_app.extensions.get("centre_days")
    if days is None:
        return Actor(me(), device_id=current_app.config.get("DEVICE_ID"))
    today, latest = days()
    return Actor(me(), device_id=current_app.config.get("DEVICE_ID"), today=today, latest_activity=latest)
