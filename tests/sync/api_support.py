"""Helpers for the sync API tests: the app served on 127.0.0.1 by a real HTTP server, a proxy that spoils file
downloads, and a device's client."""
import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from support.web import serve  # noqa: F401 - the sync tests serve the app as the pages' tests do
from sync import PROTOCOL_VERSION, SCHEMA_VERSION
from tracker.models import new_id

PASSWORD = "correct horse battery"


class SpoilingProxy:
    """An HTTP proxy on 127.0.0.1 in front of the centre that spoils the next file downloads it is told to.

    "cut" sends the headers and half the body, then closes the connection; "corrupt" changes one byte; "html"
    answers 200 with a captive portal's page. Everything else passes through unchanged.
    """

    HOP = ("host", "connection", "content-length", "transfer-encoding", "date", "server")
    PORTAL = b"<html><body><form>Accept the Wi-Fi terms to continue</form></body></html>"

    def __init__(self, target: str):
        self.target, self.faults = urllib.parse.urlsplit(target), []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                proxy.forward(self)

            do_POST = do_PUT = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        """Pass one request to the centre and its answer back, spoilt if a fault is due."""
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        upstream.request(handler.command, handler.path, body=body,
                         headers={k: v for k, v in handler.headers.items() if k.lower() not in self.HOP})
        answer = upstream.getresponse()
        status, kept, data = answer.status, [(k, v) for k, v in answer.getheaders() if k.lower() not in self.HOP], \
            answer.read()
        upstream.close()
        fault = self.faults.pop(0) if self.faults and handler.path.startswith("/api/v1/media/") else None
        if fault == "html":
            status, kept, data = 200, [("Content-Type", "text/html; charset=utf-8")], self.PORTAL
        handler.send_response(status)
        for name, value in kept:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if fault == "cut":
            data = data[: len(data) // 2]
        elif fault == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        handler.wfile.write(data)

    def close(self) -> None:
        """Stop the proxy."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class Device:
    """A field device talking to the centre over HTTP, as the app does."""

    def __init__(self, base: str, *, schema: str = SCHEMA_VERSION, protocol: str = str(PROTOCOL_VERSION)):
        self.base, self.token, self.device_id = base, None, str(new_id())
        self.http = requests.Session()
        self.http.headers.update({"X-Tracker-Protocol": protocol, "X-Tracker-Schema": schema})

    def headers(self, **extra: str) -> dict[str, str]:
        """Return the bearer header (once signed in) and any others."""
        return ({"Authorization": f"Bearer {self.token}"} if self.token else {}) | extra

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET an API path."""
        return self.http.get(self.base + path, headers=self.headers(**kwargs.pop("headers", {})), timeout=30,
                             **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        """POST JSON to an API path."""
        return self.http.post(self.base + path, json=body, headers=self.headers(**kwargs.pop("headers", {})),
                              timeout=30, **kwargs)

    def put(self, path: str, data: bytes, **kwargs: Any) -> requests.Response:
        """PUT raw bytes to an API path."""
        return self.http.put(self.base + path, data=data, timeout=30,
                             headers=self.headers(**{"Content-Type": "application/octet-stream"},
                                                  **kwargs.pop("headers", {})), **kwargs)

    def enrol(self, user, password: str = PASSWORD, name: str = "Field tablet") -> requests.Response:  # noqa: ANN001
        """Sign in on the device; keep the token it is given."""
        answer = self.post("/api/v1/devices", {"email": user.email, "password": password,
                                               "device_id": self.device_id, "name": name})
        if answer.status_code == 201:
            self.token = answer.json()["token"]
        return answer

    def push(self, items: list) -> requests.Response:
        """Send queued items."""
        return self.post("/api/v1/push", {"items": items})

    def pull(self, after: str | None = None, **params: Any) -> requests.Response:
        """Fetch a page of the snapshot."""
        return self.get("/api/v1/pull", params=({"after": after} if after is not None else {}) | params)

    def pull_all(self, after: str | None = None, limit: int = 50) -> tuple[dict[str, list], dict, str]:
        """Pull every page of a round; return the tables gathered, the removals and the final cursor."""
        tables: dict[str, list] = {}
        removed: dict[str, list] = {}
        while True:
            answer = self.pull(after, limit=limit)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            for name, rows in page["tables"].items():
                tables.setdefault(name, []).extend(rows)
            for name, ids in page["removed"].items():
                removed.setdefault(name, []).extend(ids)
            after = page["cursor"]
            if not page["more"]:
                return tables, removed, after


def verdicts(answer: requests.Response) -> list[str]:
    """Return the verdicts of a push answer."""
    assert answer.status_code == 200, answer.text
    return [v["verdict"] for v in answer.json()["verdicts"]]
