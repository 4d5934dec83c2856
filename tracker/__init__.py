"""The portfolio evidence tracker for the City & Guilds 3085-02 Award, Unit 002."""
import os
from pathlib import Path


def create_app(test_config: dict | None = None, instance: str | Path | None = None):  # noqa: ANN201
    """Create and configure the tracker's web application."""
    # Flask is imported here, not at module level, so that `sync` and the command line can
    # use the models and rules without loading the web framework.
    from flask import Flask

    from . import clock, db

    app = Flask(__name__, instance_relative_config=True, instance_path=str(instance or db.instance_path()),
                template_folder="../templates", static_folder="../static")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("TRACKER_SECRET_KEY"),  # `tracker init` writes one into instance/config.py
        DATABASE_URL=None,  # None: DATABASE_URL from the environment, else SQLite in the instance folder
        MAX_CONTENT_LENGTH=512 * 1024 * 1024,  # the largest upload (a video); each type has its own limit too
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,  # the largest text field of a form (a drawn signature is 0.7 MB)
        TRUSTED_PROXIES=0,  # reverse proxies in front of the tracker whose X-Forwarded-For/-Proto are believed
        RATELIMIT_ENABLED=True,  # count sign-in attempts and slow password guessing (off only in tests)
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # Secure is added per request whenever it arrives over HTTPS
        TIMEZONE=clock.DEFAULT_ZONE,  # the centre's days (today, sampling cycles) run by this IANA time zone
    )
    app.config.from_pyfile("config.py", silent=True)
    if test_config is not None:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        raise RuntimeError("No SECRET_KEY: run `tracker init`, which writes one into the instance folder.")

    from . import web

    clock.set_zone(app.config["TIMEZONE"])
    app.config["DATABASE_URL"] = db.database_url(app.instance_path, app.config["DATABASE_URL"])
    db.init_app(app)
    web.init_app(app)
    return app
