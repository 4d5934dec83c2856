"""The portfolio evidence tracker for the City & Guilds 3085-02 Award, Unit 002."""
import os
from pathlib import Path


def create_app(test_config: dict | None = None):  # noqa: ANN201
    """Create and configure the tracker's web application."""
    # Flask is imported here, not at module level, so that `sync` and the command line can
    # use the models and rules without loading the web framework.
    from flask import Flask

    app = Flask(__name__, instance_relative_config=True, template_folder="../templates", static_folder="../static")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("TRACKER_SECRET_KEY", "dev"),  # replaced by instance/config.py in production
        DATABASE_URL=None,  # None: DATABASE_URL from the environment, else SQLite in the instance folder
        MAX_CONTENT_LENGTH=512 * 1024 * 1024,  # the largest upload (a video); each type has its own limit too
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from . import db, web

    app.config["DATABASE_URL"] = db.database_url(app.instance_path, app.config["DATABASE_URL"])
    db.init_app(app)
    web.init_app(app)
    return app
