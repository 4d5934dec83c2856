"""Field devices for the sync tests: a device database seeded as a first pull leaves it, an in-process centre
that answers pushes with the real apply_batch, and a transport that injects faults."""
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from sync.centre.push import apply_batch
from sync.device import client as sync_client
from sync.device.client import Response, Unreachable, apply_page
from sync.device.field import database_engine
from tracker.db import transaction, upgrade
from tracker.hashing import canonical_json
from tracker.models import Blob, Device, SyncState, User
from tracker.services.people import hash_password

PASSWORD = "correct horse battery"


def rows_of(session: Session, table: str) -> list[dict[str, Any]]:
    """Return every row of a table as the centre sends it: JSON, without password hashes."""
    model = sync_client._model(table)
    rows = []
    for obj in session.exec(select(model)):
        data = json.loads(canonical_json(obj.model_dump()))
        data.pop("password_hash", None)
        rows.append(data)
    return rows


def snapshot(session: Session, cursor: str = "1") -> dict[str, Any]:
    """Return a whole-centre page (the tests' stand-in for the first pull)."""
    return {"cursor": cursor, "more": False, "reset": True,
            "tables": {t: rows_of(session, t) for t in sync_client.TABLES}, "removed": {"candidate": []}}


def nothing_to_do(cursor: str | None) -> dict[str, Any]:
    """Return the page a pull with no changes gets."""
    return {"cursor": cursor or "0", "more": False, "reset": False, "tables": {}, "removed": {"candidate": []}}


def json_answer(status: int, body: Any) -> Response:
    """Return a JSON answer."""
    return Response(status, {"content-type": "application/json"}, json.dumps(body).encode())


@dataclass
class InProcessCentre:
    """The centre's push, apply_batch itself, answered as JSON; pulls answer from a queue of pages."""

    engine: Engine
    device_id: uuid.UUID
    today: date
    pages: list[dict] = field(default_factory=list)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Response:
        """Answer one request."""
        self.requests.append((method, path))
        if path == "/api/v1/push":
            items = json.loads(body)["items"]
            with transaction(self.engine) as session:
                device = session.get(Device, self.device_id)
                user = session.get(User, device.user_id)
                verdicts = [v.as_dict() for v in apply_batch(session, device, user, items, self.today)]
            return json_answer(200, {"verdicts": verdicts})
        if path == "/api/v1/pull":
            after = (query or {}).get("after")
            return json_answer(200, self.pages.pop(0) if self.pages else nothing_to_do(after))
        if path.startswith("/api/v1/uploads/"):
            return self._upload(method, path.rsplit("/", 1)[1], query or {}, body or b"")
        return json_answer(404, {"error": "not_found", "message": "No such endpoint."})

    def _upload(self, method: str, sha256: str, query: dict, body: bytes) -> Response:
        with Session(self.engine) as session:
            stored = session.get(Blob, sha256) is not None
        got = self.uploads.setdefault(sha256, bytearray())
        if stored:
            return json_answer(200, {"sha256": sha256, "size": None, "received": 0, "complete": True})
        if method == "PUT":
            offset = int(query["offset"])
            if offset > len(got):
                return json_answer(409, {"error": "upload_gap", "received": len(got)})
            got[offset:offset + len(body)] = body
            if len(got) == int(query["size"]):
                if hashlib.sha256(got).hexdigest() != sha256:
                    del self.uploads[sha256]
                    return json_answer(422, {"error": "hash_mismatch", "message": "The file does not match."})
                with transaction(self.engine) as session:
                    session.add(Blob(sha256=sha256, size=len(got), media_type="image/png"))
                return json_answer(201, {"complete": True})
        return json_answer(200, {"sha256": sha256, "size": None, "received": len(got), "complete": False})


class Faulty:
    """Wraps a transport and injects the next queued fault into matching requests."""

    def __init__(self, inner: Callable, faults: list[str] | None = None, only: str = "/api/v1/push"):
        self.inner, self.faults, self.only = inner, list(faults or []), only
        self.blocked = False  # the network is cut: nothing reaches the centre

    def __call__(self, method: str, path: str, **kw: Any) -> Response:
        """Send the request, or fail it the way a bad network does."""
        if self.blocked:
            raise Unreachable("network unreachable")
        fault = self.faults.pop(0) if self.faults and path.startswith(self.only) else None
        if fault == "timeout":
            raise Unreachable("timed out")
        answer = self.inner(method, path, **kw)  # the centre does its work ...
        if fault == "drop":
            raise Unreachable("connection reset")  # ... and the answer is lost
        if fault == "504":
            return Response(504, {"content-type": "text/html"}, b"<html>Gateway Timeout</html>")
        if fault == "html200":
            return Response(200, {"content-type": "text/html"}, b"<html><form>Accept the Wi-Fi terms</form></html>")
        if fault == "bare200":
            return json_answer(200, {})
        if fault == "cut":
            return Response(200, {"content-type": "application/json"}, answer.body[: len(answer.body) // 2])
        return answer


def make_device(tmp_path: Path, centre_session: Session, device: Device, name: str = "device") -> Engine:
    """Create a field device's database as its enrolment leaves it: migrated, first pull applied, sign-in kept."""
    path = tmp_path / name
    path.mkdir(parents=True, exist_ok=True)
    engine = database_engine(f"sqlite:///{path / 'tracker.db'}")
    upgrade(engine)
    with transaction(engine) as session:
        session.add(SyncState(device_id=device.id, user_id=device.user_id, server_url="http://centre.test"))
    apply_page(engine, snapshot(centre_session))
    with transaction(engine) as session:
        user = session.get(User, device.user_id)
        user.password_hash = hash_password(PASSWORD)
        session.add(user)
    return engine


def table_counts(engine: Engine, *models: type[SQLModel]) -> dict[str, int]:
    """Return row counts per table."""
    from sqlmodel import func

    with Session(engine) as session:
        return {m.__tablename__: session.exec(select(func.count()).select_from(m)).one() for m in models}


def wsgi(centre: Callable) -> Callable:
    """Serve a transport-shaped centre over WSGI, so a device can reach it over real HTTP."""
    from urllib.parse import parse_qsl

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        answer = centre(environ["REQUEST_METHOD"], environ["PATH_INFO"], query=query, body=body, headers={})
        start_response(f"{answer.status} X", [("Content-Type", answer.headers.get("content-type", "text/plain")),
                                              ("Content-Length", str(len(answer.body)))])
        return [answer.body]

    return app


class Served:
    """A WSGI app served by waitress on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Callable):
        import threading

        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.close()


class FlaskTransport:
    """The centre's real /api/v1, called in process through the Flask test client (fast, for property runs)."""

    def __init__(self, app: Any):
        self.client = app.test_client()

    def __call__(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Response:
        """Answer one request from the centre's app."""
        answer = self.client.open(path, method=method, query_string=query or {}, data=body,
                                  headers=headers or {})
        return Response(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, answer.get_data())


def enrol_over(transport: Callable, user: User, device_id: uuid.UUID) -> str:
    """Enrol a device through the centre's API; return its token."""
    from sync.device.client import headers

    body = json.dumps({"email": user.email, "password": PASSWORD, "device_id": str(device_id), "name": "Tablet"})
    answer = transport("POST", "/api/v1/devices", body=body.encode(), headers=headers())
    assert answer.status == 201, answer.body
    return answer.json()["token"]
