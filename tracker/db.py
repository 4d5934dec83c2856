"""The database: one engine per app, one session per request, schema by Alembic migrations."""
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event, insert
from sqlalchemy.engine import Dialect, Engine
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def instance_path() -> Path:
    """Return the instance folder: $TRACKER_INSTANCE, or instance/ beside the tracker package."""
    return Path(os.environ.get("TRACKER_INSTANCE") or Path(__file__).resolve().parent.parent / "instance")


def ensure_secret_key(instance: Path) -> None:
    """Write a random secret key into instance/config.py the first time, so sessions survive restarts."""
    config = instance / "config.py"
    if config.exists():
        return
    instance.mkdir(parents=True, exist_ok=True)
    config.write_text(f"SECRET_KEY = {secrets.token_hex(32)!r}\n", encoding="utf-8")
    config.chmod(0o600)


def database_url(instance_path: str | Path, configured: str | None = None) -> str:
    """Return the configured database URL, or SQLite in the instance folder."""
    url = configured or os.environ.get("DATABASE_URL")
    if url:
        # Hosting platforms hand out postgres:// URLs; SQLAlchemy names the driver explicitly.
        return url.replace("postgres://", "postgresql+psycopg://", 1).replace("postgresql://", "postgresql+psycopg://", 1)
    return f"sqlite:///{Path(instance_path) / 'tracker.db'}"


def make_engine(url: str, *, durable: bool = True) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    # FULL syncs the log on every commit: what the centre acknowledges to a device survives a power cut (G21).
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    synchronous = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if ":memory:" not in url and url != "sqlite://":
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()

    return engine


def alembic_config(engine: Engine) -> Config:
    """Return an Alembic configuration that runs the tracker's migrations on this engine."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to a revision (the newest by default)."""
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """Give a session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_new(session: Session, model: type, values: dict) -> bool:
    """Insert a row unless one with its key is there already (added meanwhile by another request, which this one
    waits for); return whether this request added it. Neither request fails: both go on with the one row."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = model.__table__
    statement = insert(table).values(**values).on_conflict_do_nothing().returning(*table.primary_key.columns)
    return session.execute(statement).first() is not None


def init_app(app) -> None:  # noqa: ANN001
    """Attach the engine to the app and close each request's session on teardown."""
    from flask import g

    app.extensions["engine"] = make_engine(app.config["DATABASE_URL"])

    @app.teardown_appcontext
    def _close(_exc):  # noqa: ANN001
        session = g.pop("db", None)
        if session is not None:
            session.close()


def get_session() -> Session:
    """Return this request's session."""
    from flask import current_app, g

    if "db" not in g:
        g.db = Session(current_app.extensions["engine"], expire_on_commit=False)
    return g.db


def insert_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows that all name the same columns in one statement, each value converted as its column's type
    converts it; nothing is run for no rows."""
    if not rows:
        return
    connection = session.connection()
    plan = _insert_plan(connection.dialect, table, tuple(rows[0]))
    values = itemgetter(*plan.keys)
    params = []
    for row in rows:
        row_values = list(values(row)) if len(plan.keys) > 1 else [values(row)]
        for index, convert in plan.converters:
            row_values[index] = convert(row_values[index])
        params.append(tuple(row_values) if plan.names is None else dict(zip(plan.names, row_values)))
    # The statement is compiled once per table and columns, and the values converted here in one pass: per row,
    # a Core insert's own parameter handling costs more than the database's insert.
    connection.exec_driver_sql(plan.sql, params)


@dataclass(frozen=True)
class _InsertPlan:
    """An insert compiled for a dialect: its SQL, the columns in the driver's order, their converters by position,
    and the parameter names when the driver takes them by name."""

    sql: str
    keys: tuple[str, ...]
    converters: list[tuple[int, Callable[[Any], Any]]]
    names: list[str] | None


@lru_cache(maxsize=256)
def _insert_plan(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _InsertPlan:
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    names = {bind.key: compiled.escaped_bind_names.get(name, name) for bind, name in compiled.bind_names.items()}
    if set(names) != set(keys):
        # A Core insert works out defaults of columns the rows leave out; here every row must give them.
        raise ValueError(f"insert_many into {table.name}: the rows give {sorted(keys)}, the insert takes "
                         f"{sorted(names)}")
    by_name = {name: key for key, name in names.items()}
    ordered = tuple(by_name[name] for name in compiled.positiontup) if compiled.positional else keys
    converters = [(index, convert) for index, key in enumerate(ordered)
                  if (convert := table.c[key].type.dialect_impl(dialect).bind_processor(dialect)) is not None]
    return _InsertPlan(compiled.string, ordered, converters,
                       None if compiled.positional else [names[key] for key in ordered])
