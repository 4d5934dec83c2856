"""The command line: every command works on a fresh instance and fails with a clear message, not a traceback."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import handbook
from tracker.cli import main

EXCERPT = Path(__file__).parent / "data" / "handbook_3085_unit002.txt"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Run a tracker command against a fresh instance folder (SQLite)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args, input=None):  # noqa: A002
        return runner.invoke(main, ["--instance", str(tmp_path / "instance"), *args], input=input)

    return invoke


@pytest.fixture
def ready(run):
    """An initialised instance."""
    assert run("init").exit_code == 0
    return run


def test_init_is_idempotent(run, tmp_path):
    """`init` migrates and loads the pack, writes a secret key once, and changes nothing the second time."""
    first = run("init")
    assert first.exit_code == 0 and "cg-3085 version 1: loaded" in first.output
    config = (tmp_path / "instance" / "config.py").read_text()
    second = run("init")
    assert second.exit_code == 0 and "unchanged" in second.output
    assert (tmp_path / "instance" / "config.py").read_text() == config
    assert (tmp_path / "instance" / "tracker.db").exists()


def test_criteria_json_matches_the_handbook_word_for_word(ready):
    """All 20 Unit 002 criteria from `criteria --json` equal the handbook's text."""
    result = ready("criteria", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    printed = {c["code"]: c["text"] for o in data["outcomes"] for c in o["criteria"]}
    source = handbook.handbook_criteria(EXCERPT.read_text(encoding="utf-8"))
    assert list(printed) == list(source) and len(printed) == 20
    for code, text in source.items():
        assert handbook.normalise(printed[code]) == text, code


def test_criteria_json_shape(ready):
    """The JSON has the documented shape, outcomes in order, range with items."""
    data = json.loads(ready("criteria", "--unit", "002", "--json").output)
    assert (data["unit"], data["title"]) == ("002", "Use person-centred practices to deliver personalisation in "
                                                    "health and social care")
    assert [o["number"] for o in data["outcomes"]] == ["1", "2", "3", "4", "5", "6"]
    first = data["outcomes"][0]["criteria"][2]
    assert first["code"] == "1.3" and first["range"][0]["items"] == [
        "working and not working from different perspectives", "person-centred review"]


def test_criteria_text(ready):
    """The text listing shows every criterion code and the range."""
    output = ready("criteria").output
    assert all(f"  {code} " in output for code in ("1.1", "3.4", "6.3"))
    assert "relationship circle" in output


def test_unit_001_printed_too(ready):
    """Unit 001 is printed on request."""
    data = json.loads(ready("criteria", "--unit", "001", "--json").output)
    assert sum(len(o["criteria"]) for o in data["outcomes"]) == 24


@pytest.mark.parametrize("args, message", [
    (("criteria", "--unit", "009"), "No unit 009"),
    (("readiness", "nobody@nowhere.test"), "No such candidate"),
    (("pack", "load", "/nonexistent/pack.json"), "Cannot read the spec pack"),
    (("user", "add", "not-an-email", "--name", "X", "--role", "assessor", "--password", "long enough pw"),
     "Email"),
    (("user", "add", "a@centre.test", "--name", "X", "--role", "assessor", "--password", "short"), "10 characters"),
    (("user", "add", "a@centre.test", "--name", "X", "--role", "wizard", "--password", "long enough pw"),
     "Invalid value for '--role'"),
])
def test_bad_input_is_a_clear_error(ready, args, message):
    """Bad input ends with a one-line error and a non-zero exit, never a traceback."""
    result = ready(*args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, KeyError))


def test_uninitialised_database_is_a_clear_error(run):
    """A command before `init` says to run it."""
    result = run("criteria")
    assert result.exit_code == 1 and "Run `tracker init` first" in result.output


def test_user_add_prompts_and_refuses_duplicates(ready):
    """`user add` asks for the password twice and refuses a second account for the same email."""
    added = ready("user", "add", "ann@centre.test", "--name", "Ann Assessor", "--role", "assessor", "--role", "iqa",
                  input="a long password\na long password\n")
    assert added.exit_code == 0 and "Added Ann Assessor <ann@centre.test> as assessor, iqa." in added.output
    again = ready("user", "add", "ANN@centre.test", "--name", "Ann", "--role", "assessor",
                  "--password", "a long password")
    assert again.exit_code == 1 and "already an account" in again.output


def test_pack_load_of_another_awarding_body(ready):
    """`pack load` loads the SQA unit from its file."""
    path = Path(__file__).parent / "data" / "specpacks" / "sqa-fm9634.json"
    result = ready("pack", "load", str(path))
    assert result.exit_code == 0 and "sqa-fm9634 version 1: loaded" in result.output
    data = json.loads(ready("criteria", "--pack", "sqa-fm9634", "--unit", "FM96 34", "--json").output)
    assert len(data["outcomes"]) == 3


@pytest.mark.parametrize("command", ["init", "demo", "user", "criteria", "pack", "readiness", "serve", "backup",
                                     "restore"])
def test_every_command_has_help(run, command):
    """Every command explains itself with --help."""
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output and "Options" in result.output


def test_uploads_prune_discards_only_abandoned_parts(ready, tmp_path):
    """`uploads prune` removes an upload untouched for longer than --days, its parts included, and says so."""
    from datetime import timedelta

    from sqlmodel import Session

    from sync.centre.media import spool_path
    from tracker import create_app
    from tracker.db import database_url
    from tracker.models import Device, Upload, User, new_id, utcnow

    instance = tmp_path / "instance"
    app = create_app({"DATABASE_URL": database_url(instance, None)}, instance=instance)
    old, new, device = "a" * 64, "b" * 64, new_id()
    with Session(app.extensions["engine"]) as session:
        owner = User(email="ann@centre.test", name="Ann Assessor")
        session.add(owner)
        session.flush()
        session.add(Device(id=device, user_id=owner.id, name="Tablet", token_hash="c" * 64, schema_version="0012",
                           protocol_version=1, expires_at=utcnow() + timedelta(days=90)))
        session.flush()
        session.add(Upload(device_id=device, sha256=old, size=5_000_000, received=3 * 1024 * 1024,
                           updated_at=utcnow() - timedelta(days=30)))
        session.add(Upload(device_id=device, sha256=new, size=5_000_000, received=1024))
        session.commit()
    for digest in (old, new):
        spool_path(app.extensions["storage"], digest, device).parent.mkdir(parents=True, exist_ok=True)
        spool_path(app.extensions["storage"], digest, device).write_bytes(b"%PDF" + bytes(1020))
    result = ready("uploads", "prune", "--days", "14")
    assert result.exit_code == 0, result.output
    assert "Discarded 1 unfinished upload (3.0 MB of parts) no part had reached for 14 days or more." in result.output
    with Session(app.extensions["engine"]) as session:
        assert session.get(Upload, (device, old)) is None and session.get(Upload, (device, new)) is not None
    assert not spool_path(app.extensions["storage"], old, device).exists()
    assert spool_path(app.extensions["storage"], new, device).exists()
    app.extensions["engine"].dispose()
    assert ready("uploads", "prune", "--days", "0").exit_code != 0  # at least a day
