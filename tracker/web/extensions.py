"""The Flask extensions every blueprint uses, made once here and wired into the app by `tracker.web.init_app`."""
from flask_htmx import HTMX
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
htmx = HTMX()
login_manager = LoginManager()
