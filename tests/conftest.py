"""Fixtures: a migrated database per test on SQLite and on a real PostgreSQL, and record factories."""
import itertools
import os
import shutil

import pytest
import time_machine
from jinja2 import BytecodeCache
from sqlalchemy import create_engine as sa_engine
from sqlalchemy import text
from sqlmodel import Session

from support.factories import NOW, TODAY, Factory
from support.postgres import Server, find_bin
from tracker.db import make_engine, transaction, upgrade
from tracker.specpacks import loader



def pytest_addoption(parser):
    """Let a run choose its database backends."""
    parser.addoption("--backend", action="append", choices=["sqlite", "postgresql"],
                     help="database backends to run on (default: both where PostgreSQL can be started)")


def pytest_generate_tests(metafunc):
    """Run every database test once per backend."""
    # Browser flows drive the pages on SQLite (their folder fixes the backend); the pages run on both elsewhere.
    if "backend" in metafunc.fixturenames and "tests/browser/" not in str(metafunc.definition.fspath):
        # A module may name the backends it needs (e.g. access rules do not depend on the database engine).
        wanted = getattr(metafunc.module, "BACKENDS", ("sqlite", "postgresql"))
        chosen = [b for b in (metafunc.config.getoption("backend") or wanted) if b in wanted]
        metafunc.parametrize("backend", chosen, scope="session")


def _fill(engine) -> None:
    upgrade(engine)
    with transaction(engine) as session:
        for document in loader.bundled():
            loader.load(session, document)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite database with the bundled packs, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    _fill(make_engine(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """Start a real PostgreSQL server for the run, or skip where none is installed (never in CI)."""
    if url := os.environ.get("TRACKER_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = find_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: CI must run the suite on PostgreSQL too")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = Server(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server):
    """A migrated PostgreSQL template database with the bundled packs."""
    admin = sa_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS tracker_template"))
        conn.execute(text("CREATE DATABASE tracker_template"))
    _fill(make_engine(postgres_server.rsplit("/", 1)[0] + "/tracker_template"))
    yield admin
    admin.dispose()


_numbers = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _run_clock():
    """Run the whole session on the tests' clock: session fixtures see the same day as the tests."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(autouse=True)
def _clock(time_machine):
    """Start every test at the run's moment, so the tracker's today and the factories' TODAY are one day.

    A test that needs another moment (a grant's end, a token's expiry) moves the clock with `time_machine.move_to`.
    """
    time_machine.move_to(NOW, tick=True)


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch):
    """Hash test passwords with argon2id at its lowest cost; the production parameters are tested on their own."""
    from argon2 import PasswordHasher

    from tracker.services import people

    monkeypatch.setattr(people, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def database_url(request, backend, tmp_path):
    """A fresh, migrated database with the bundled packs loaded, on the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "tracker.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_template")
    name = f"tracker_test_{os.getpid()}_{next(_numbers)}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE tracker_template STRATEGY FILE_COPY"))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def engine(database_url):
    """An engine on this test's database."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    """A session on this test's database; the test commits what it wants kept."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def factory(session):
    """A factory for people, candidates and evidence, acting through the real services."""
    return Factory(session, TODAY)


class _CompiledTemplates(BytecodeCache):
    """Templates compiled once for the whole run and shared by every test's app (keyed by name and source)."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket) -> None:  # noqa: ANN001
        if (code := self.compiled.get(bucket.key)) is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:  # noqa: ANN001
        self.compiled[bucket.key] = bucket.bytecode_to_string()


COMPILED = _CompiledTemplates()


@pytest.fixture
def app(database_url, tmp_path):
    """The web app on this test's database, with CSRF and rate limits on as in production."""
    from tracker import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url},
                     instance=tmp_path / "instance")
    app.jinja_env.bytecode_cache = COMPILED  # each test's app would otherwise compile every template again
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def sign_in(client):
    """Sign a person in through the real form (reading its CSRF token like a browser)."""
    from support.web import form_token

    def do(user, password="correct horse battery"):
        token = form_token(client.get("/auth/login").get_data(as_text=True))
        return client.post("/auth/login", data={"email": user.email, "password": password, "csrf_token": token})

    return do
