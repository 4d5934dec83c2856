"""Sign-in, sign-out and changing one's password; sessions are ended in the database, for every server process."""
import uuid
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_htmx.responses import HTMXResponseClientRedirect
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.orm import joinedload

from ..audit import Actor
from ..db import get_session
from ..errors import InvalidInput, Refusal
from ..models import User
from ..services import attempts, people
from .extensions import htmx, login_manager
from .forms import form_from

bp = Blueprint("auth", __name__, url_prefix="/auth")
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."


class SessionUser:
    """The signed-in person, as Flask-Login sees them."""

    is_authenticated, is_active, is_anonymous = True, True, False

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        """Return what Flask-Login keeps in the session: the person's id and the count their sessions began under."""
        return f"{self.user.id}.{self.user.session_epoch}"


@login_manager.user_loader
def load_user(session_id: str) -> SessionUser | None:
    """Load the signed-in person for each request, unless their sessions have been ended since this one began."""
    user_id, _, epoch = session_id.partition(".")
    try:
        user = get_session().get(User, uuid.UUID(user_id), options=[joinedload(User.roles)])
    except ValueError:
        return None
    if user is None or not user.active or str(user.session_epoch) != epoch:
        return None
    return SessionUser(user)


@login_manager.unauthorized_handler
def unauthorized():  # noqa: ANN201
    """Send a logged-out person to sign in; an htmx request is told to redirect the whole page."""
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if htmx:
        return HTMXResponseClientRedirect(target)
    flash(login_manager.login_message, "info")
    return redirect(target)


def _safe_next(target: str | None) -> str:
    """Return a same-site path to go to after sign-in, never another site (nor a header a line break would split)."""
    if target and target.isprintable() and "\\" not in target and not urlsplit(target).netloc \
            and not urlsplit(target).scheme and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("home.index")


TOO_MANY = "Too many sign-in attempts. Wait {wait}, then try again."


def waiting(seconds: int) -> str:
    """Say how long to wait, in words."""
    minutes = -(-seconds // 60)
    return "a minute" if minutes <= 1 else f"{minutes} minutes"


def attempt(email: object, password: object) -> tuple[User | None, int]:
    """Try a sign-in from this client: return the person, or None and how many seconds to wait before the next try
    (0 when the email address or password is simply not right). The attempt is counted and committed."""
    session = get_session()
    limited = current_app.config["RATELIMIT_ENABLED"]
    wait = attempts.wait(session, request.remote_addr, email) if limited else 0
    if wait:
        return None, wait
    user = people.authenticate(session, email, password)
    if limited:
        attempts.note(session, request.remote_addr, email, failed=user is None)
        session.commit()
    return user, 0


@bp.route("/login", methods=["GET", "POST"])
def login():  # noqa: ANN201
    """Show the sign-in form and sign a person in."""
    error, email, status = None, request.form.get("email", "").strip(), 200
    if request.method == "POST":
        user, wait = attempt(email, request.form.get("password", ""))
        if user is not None:
            login_user(SessionUser(user))
            return redirect(_safe_next(request.args.get("next")))
        error, status = (TOO_MANY.format(wait=waiting(wait)), 429) if wait else (
            "The email address or password is not right.", 401)
    response = current_app.make_response((render_template("auth/login.html", error=error, email=email), status))
    if status == 429:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
@login_required
def logout():  # noqa: ANN201
    """Sign out: every session of this person ends, on this browser and any other."""
    session = get_session()
    people.end_sessions(session, me())
    session.commit()
    logout_user()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


PASSWORD_FIELDS = ("current", "password", "confirm")


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():  # noqa: ANN201
    """Change one's own password; every other session of the person ends, this browser stays signed in."""
    form = form_from(None, *PASSWORD_FIELDS)
    if request.method == "POST":
        session = get_session()
        try:
            _change_password(session, request.form)
            session.commit()
        except Refusal as refusal:
            session.rollback()
            form.refuse(refusal)
            return render_template("auth/password.html", form=form), 422
        login_user(SessionUser(me()))  # this browser begins again under the new count
        flash("Your password is changed. You have been signed out everywhere else.", "success")
        return redirect(url_for("home.index"), 303)
    return render_template("auth/password.html", form=form)


def _change_password(session, data) -> None:  # noqa: ANN001
    """Check the current password and the new one twice, then set it."""
    if not people.verify_password(me(), data.get("current", "")):
        raise InvalidInput("Your current password is not right.", field="current")
    if data.get("password", "") != data.get("confirm", ""):
        raise InvalidInput("The new password and its confirmation are not the same.", field="confirm")
    people.set_password(session, actor(), me(), data.get("password", ""))


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
