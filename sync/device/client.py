"""A field device's side of sync: push the outbox, upload media in parts, pull the caseload and its files (no Flask).

Every network answer is judged strictly (G5): an item counts as sent only when the centre's JSON answer carries a
verdict with the item's id. A bare 200, an HTML page from a captive portal, a 504 or a timeout leave the item
unsent, to be tried again. A 401 or a 426 keeps the whole queue and says what the person must do.
"""
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any, BinaryIO, Protocol

from sqlalchemy import Date, DateTime, Text, Uuid, delete, type_coerce, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from tracker import clock
from tracker.db import transaction
from tracker.models import ConflictCopy, Evidence, EvidenceVersion, OutboxItem, SyncState, utcnow
from tracker.storage import CHUNK

from .. import PROTOCOL_VERSION, SCHEMA_VERSION, acknowledged_digest
from . import downloads, outbox

log = logging.getLogger(__name__)
BATCH = 500  # items per push, the most a centre takes at once: about 280 KB and one short centre transaction
PART = 4 * 1024 * 1024
TIMEOUT = 30.0
JSON = "application/json"

# Pulled tables in the order their foreign keys need (parents first); removal runs in reverse.
TABLES = ("specpack", "qualification", "unit", "qualificationunit", "outcome", "criterion", "rangeitem",
          "user_account", "rolegrant", "assessorqualification", "occupationalcompetence", "expertwitnessapproval",
          "iqaqualification", "candidate", "candidateassignment", "blob", "evidence", "evidenceversion",
          "evidencecriterion", "evidencerangeitem", "attachment", "signature", "evidencereview",
          "criteriondecision", "decisionevidence", "unitsignoff", "assignmentresult")
EVIDENCE_CHILDREN = ("evidencecriterion", "evidencerangeitem", "attachment", "signature")


class Answer(Protocol):
    """What a transport returns for one request."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    """An HTTP answer, read whole (answers are small JSON; a downloaded file's bytes go to a file instead)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body as JSON, or None when it is not JSON (a captive portal's HTML page)."""
        if "json" not in self.headers.get("content-type", "").lower():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Unreachable(Exception):
    """The centre could not be reached, or its answer did not arrive whole."""


class Stopped(Exception):
    """The centre refused to go on until the person acts: sign in again, or update the tracker."""

    def __init__(self, needs: str, message: str):
        super().__init__(message)
        self.needs, self.message = needs, message


class Transport(Protocol):
    """Sends one request to the centre.

    A transport may also offer `download(path, out, *, headers)`, which writes a 200 answer's body to `out` in
    chunks; `download` below falls back to an ordinary request for one that does not (test doubles).
    """

    def __call__(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Response: ...


class HttpTransport:
    """The real transport: urllib over HTTP(S), with a timeout on every request."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def __call__(self, method: str, path: str, *, query: dict | None = None, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Response:
        """Send a request and read the whole answer, or raise Unreachable."""
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._exchange(urllib.request.Request(url, data=body, method=method, headers=headers or {}),
                              lambda answer: answer.read())

    def download(self, path: str, out: BinaryIO, *, headers: dict[str, str] | None = None) -> Response:
        """GET a file, writing a successful answer's body to `out` chunk by chunk; its Response has no body.

        Other answers (small JSON errors) are read whole as usual. A body that ends before its Content-Length
        (the connection was cut) raises Unreachable, like any failed request.
        """
        def stream(answer: http.client.HTTPResponse) -> bytes:
            expected, received = answer.headers.get("content-length"), 0
            while chunk := answer.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
            if expected is not None and expected.isdigit() and received != int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - received)
            return b""

        return self._exchange(urllib.request.Request(self.base_url + path, headers=headers or {}), stream)

    def _exchange(self, request: urllib.request.Request, read: Callable[[Any], bytes]) -> Response:
        """Send a request and read its answer with `read`; an error status is read whole; or raise Unreachable."""
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (configured URL)
                return Response(answer.status, {k.lower(): v for k, v in answer.headers.items()}, read(answer))
        except urllib.error.HTTPError as error:
            try:
                return Response(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())
            except (OSError, http.client.HTTPException) as exc:
                raise Unreachable(f"the answer was cut off ({exc})") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, cut bodies
            raise Unreachable(str(getattr(exc, "reason", exc))) from None


def download(transport: Transport, path: str, out: BinaryIO, headers: dict[str, str]) -> Response:
    """Fetch a file into `out`: streamed by a transport that can, otherwise read whole and written."""
    streaming = getattr(transport, "download", None)
    if streaming is not None:
        return streaming(path, out, headers=headers)
    answer = transport("GET", path, headers=headers)
    if 200 <= answer.status < 300:
        out.write(answer.body)
        return Response(answer.status, answer.headers, b"")
    return answer


def headers(token: str | None = None, content_type: str = "application/json") -> dict[str, str]:
    """Return the headers every request carries (G17)."""
    out = {"X-Tracker-Protocol": str(PROTOCOL_VERSION), "X-Tracker-Schema": SCHEMA_VERSION,
           "Accept": "application/json", "Content-Type": content_type}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


@dataclass
class Report:
    """What one sync did, and what is still not accepted, for the command line and the Sync page (G22)."""

    pushed: int = 0
    uploaded_bytes: int = 0
    pulled_rows: int = 0
    files_downloaded: int = 0
    files_waiting: int = 0  # named by pulled evidence, not on the device yet: fetched at the next sync, not an error
    requests: int = 0
    sent_again: int = 0  # items the centre had lost (a restore from backup) and has been sent again (G21)
    outstanding: dict[str, list[str]] = field(default_factory=dict)  # unsent, held, refused, conflict: described
    error: str | None = None

    @property
    def parked(self) -> list[str]:
        """Return the items that need the assessor: refused, or kept as a conflict."""
        return self.outstanding.get("refused", []) + self.outstanding.get("conflict", [])

    @property
    def ok(self) -> bool:
        """Return whether the centre was reached and has accepted every item: applied, or a duplicate."""
        return self.error is None and not any(self.outstanding.values())

    @property
    def files_note(self) -> str:
        """Say how many files are still to come from the centre, or nothing."""
        return downloads.waiting_note(self.files_waiting)

    def lines(self) -> list[str]:
        """Say, item by item, what is not accepted yet and why; nothing when everything is."""
        words = {"unsent": "Not sent yet", "held": "Waiting", "refused": "Refused by the centre",
                 "conflict": "Conflict to resolve"}
        return [f"{words[state]}: {line}" for state in words for line in self.outstanding.get(state, [])]

    def summary(self) -> str:
        """Say in one sentence whether everything is accepted, or how many items are not, by state."""
        counts = {state: len(found) for state, found in self.outstanding.items() if found}
        if not counts:
            return "Everything is accepted by the centre."
        names = {"unsent": "not sent yet", "held": "waiting", "refused": "refused", "conflict": "in conflict"}
        return "Not everything is accepted: " + ", ".join(f"{n} {names[s]}" for s, n in counts.items()) + "."


def describe(item: OutboxItem) -> str:
    """Name a queued item for a person: its change, its evidence, and the centre's reason."""
    what = item.kind.replace("evidence.", "evidence ").replace("conflict.", "conflict ")
    title = item.payload.get("title") or (item.payload.get("content") or {}).get("title") \
        if isinstance(item.payload, dict) else None
    named = f"{what} “{title}”" if title else f"{what} {item.evidence_id or ''}".strip()
    return f"{named}: {item.message}" if item.message else named


MAX_SERVER_ERRORS = 5  # the centre failed this item this many times: a person must look (G25)


class Client:
    """Syncs one field device's database with the centre."""

    def __init__(self, engine: Engine, storage: Any, transport: Transport, token: str | None,
                 batch: int = BATCH, part: int = PART):
        self.engine, self.storage, self.transport, self.token = engine, storage, transport, token
        self.batch, self.part = batch, part
        self.report = Report()
        self.centre_holds: dict[str, Any] | None = None  # what the centre keeps from this device (G21)
        self._resend = 0  # items sent again this round because a change waits for them at the centre
        self._later: tuple[list[Any], dict[str, dict]] | None = None  # accepted answers still to be recorded

    # --- The whole round ---------------------------------------------------------------------------------

    def sync(self) -> Report:
        """Push, pull, send again what the centre lost, then fetch the pulled evidence's files; record the
        outcome in the sync state."""
        self.report, self._resend = Report(), 0
        try:
            self.push()
            self.pull()
            if self.reconcile() or self._resend:
                self.push()
                self.pull()
            self.download_media()
        except Stopped as stop:
            self._finish(stop.message, stop.needs)
        except Unreachable as exc:
            self._finish(f"The centre could not be reached: {exc}. Everything stays on this device and will be "
                         "sent later.")
        else:
            self._finish(None)
        with Session(self.engine) as session:
            self.report.outstanding = {state: [describe(i) for i in found]
                                       for state, found in outbox.outstanding(session).items()}
        return self.report

    def _finish(self, error: str | None, needs: str | None = None) -> None:
        self.report.error = error
        with transaction(self.engine) as session:
            state = session.get(SyncState, 1)
            if state is None:
                return
            now = utcnow()
            if state.last_attempt_at is not None and now < clock.aware(state.last_attempt_at):
                state.clock_offset = None  # this device's clock has gone back since it was learned: it no longer holds
            state.last_attempt_at, state.last_error, state.needs = now, error, needs
            if error is None:
                state.last_success_at = state.last_attempt_at
            if self.report.sent_again:
                state.notice = (f"The centre no longer had {self.report.sent_again} item(s) it had accepted from "
                                "this device (it may have been restored from a backup); they have been sent again.")
            session.add(state)

    def _send(self, method: str, path: str, *, query: dict | None = None, body: Any = None,
              raw: bytes | None = None, content_type: str = "application/octet-stream") -> Response:
        """Send one request; a 401 or 426 stops the round with what the person must do."""
        self.report.requests += 1
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode("utf-8"))
        answer = self.transport(method, path, query=query, body=data, headers=headers(
            self.token, content_type if raw is not None else JSON))
        return self._check(answer)

    def _check(self, answer: Response) -> Response:
        """Return the answer, unless it is a 401 or 426: then stop the round with what the person must do."""
        found = answer.json() or {}
        if answer.status == 401:
            raise Stopped("sign_in", "The centre no longer accepts this device's sign-in "
                                     f"({found.get('error', 'token_invalid')}): sign in again with "
                                     "`tracker field enrol`. Nothing has been lost.")
        if answer.status == 426:
            raise Stopped("update", "The centre needs a newer version of the tracker: update the tracker on this "
                                    "device. Nothing has been lost.")
        return answer

    # --- Push -------------------------------------------------------------------------------------------

    def push(self) -> None:
        """Send every sendable item once, in seq order, batch by batch; an item waits only for what it depends
        on, so a held or refused one never stops those behind it (G12)."""
        after = 0
        try:
            for _ in range(100_000):
                batch = self._next_batch(after)
                if not batch:
                    return
                after = batch[-1].seq
                ready = self._hold_blocked(batch)
                if ready:
                    self._upload_media(ready)
                    self._push_batch(ready)
        finally:
            self._settle_later()  # the last batch's answers, also when a later request failed

    def _next_batch(self, after: int) -> list["Queued"]:
        """Return the next sendable items after a seq, oldest first, each payload as the JSON text stored."""
        with Session(self.engine) as session:
            return [Queued(*row) for row in session.exec(select(
                OutboxItem.item_id, OutboxItem.seq, OutboxItem.kind, type_coerce(OutboxItem.payload, Text),
                OutboxItem.state, OutboxItem.code, OutboxItem.attempts, OutboxItem.evidence_id).where(
                col(OutboxItem.state).in_(outbox.SENDABLE), OutboxItem.seq > after)
                .order_by(OutboxItem.seq).limit(self.batch))]

    def _hold_blocked(self, batch: list[Any]) -> list[Any]:
        """Keep back the changes queued after a refused or conflicting one on the same evidence; return the rest."""
        with transaction(self.engine) as session:
            blocking = outbox.blockers(session)
            held, ready = [], []
            for item in batch:
                first = blocking.get(item.evidence_id)
                if first is not None and first.seq < item.seq:
                    held.append({"key": item.item_id, "state": outbox.HELD, "acknowledged": False, "sent_at": None,
                                 **_blocked_by(first)})
                else:
                    ready.append(item)
            outbox.record_answers(session, held)
        return ready

    def _push_batch(self, batch: list[Any], retry: bool = False) -> None:
        """Push one batch and record each item's verdict."""
        with transaction(self.engine) as session:  # marked attempted, and committed, before sending (G5)
            outbox.mark_attempted(session, [i.item_id for i in batch])
        # The payloads go as the JSON text the outbox stores: the same values, without reading each one and
        # writing it again.
        items = ",".join(f'{{"item_id":"{i.item_id}","seq":{i.seq},"kind":{json.dumps(i.kind)},"payload":{i.raw}}}'
                         for i in batch)
        answer = self._send_settling("POST", "/api/v1/push", raw=f'{{"items":[{items}]}}'.encode(), content_type=JSON)
        found = answer.json()
        if (limit := _smaller_limit(answer, found, len(batch))) is not None:
            # An older centre takes fewer items at once and applied none of these: send them in its batch size.
            self.batch = limit
            for start in range(0, len(batch), limit):
                self._push_batch(batch[start:start + limit], retry)
            return
        verdicts = found.get("verdicts") if answer.status == 200 and isinstance(found, dict) else None
        if not isinstance(verdicts, list):
            raise Unreachable(f"the centre's answer to a push was not a list of verdicts (HTTP {answer.status})")
        by_id = {str(v.get("item_id")): v for v in verdicts if isinstance(v, dict)}
        if all(v.get("verdict") in ("applied", "duplicate") for v in by_id.values()):
            # Accepted answers hold back nothing and wait for nothing: recorded while the next batch is sent.
            self._later = (batch, by_id)
            return
        missing = self._settle(batch, by_id)
        if missing and self._upload(missing, force=True) and not retry:
            # The centre lacked files these items declare, and has them now: send the items once more.
            self._push_batch([i for i in batch if by_id.get(str(i.item_id), {}).get("code") == "media_missing"],
                             retry=True)

    def _send_settling(self, method: str, path: str, **kwargs: Any) -> Response:
        """Send a request, recording meanwhile the answers kept for later (the centre works while the device
        writes); if recording fails, the request is still waited for before that error is raised."""
        if self._later is None:
            return self._send(method, path, **kwargs)
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(self._send, method, path, **kwargs)
            self._settle_later()
            return sending.result()

    def _settle_later(self) -> None:
        """Record the answers kept for later, if any."""
        if self._later is not None:
            batch, by_id = self._later
            self._later = None
            self._settle(batch, by_id)

    def _settle(self, batch: list[Any], by_id: dict[str, dict]) -> set[str]:
        """Record each item's verdict; send again what a held change waits for; return the media the centre lacks."""
        missing, changes, waiting, now = set(), [], [], utcnow()
        for sent in batch:
            verdict = by_id.get(str(sent.item_id))
            if verdict is None:
                continue  # no answer for this item: it stays unsent (G5)
            change = _state_for(sent, verdict, now)
            if change["state"] == outbox.SENT:
                self.report.pushed += 1
            elif verdict.get("code") == "media_missing":
                missing.update(sent.media)
            elif verdict.get("code") == "dependency_missing" and sent.code != "dependency_missing":
                waiting.append(sent)  # the first time only: what the centre lacks may have been lost there
            changes.append({"key": sent.item_id, **change})
        with transaction(self.engine) as session:
            outbox.record_answers(session, changes)
            for held in waiting:
                chain = outbox.sent_chain(session, held.evidence_id, held.seq) if held.evidence_id else []
                self._resend += outbox.send_again(session, chain, "Sent again: a later change waited for it at the "
                                                                  "centre, which no longer had it.")
        return missing

    def _upload_media(self, batch: list[OutboxItem]) -> None:
        hashes = {h for item in batch for h in item.media}
        self._upload(hashes)

    def _upload(self, hashes: set[str], force: bool = False) -> int:
        """Upload each file the centre does not have whole, resuming from what it has received; say how many."""
        done, count = getattr(self, "_uploaded", set()), 0
        for sha256 in sorted(hashes - (set() if force else done)):
            if self.storage is None or not self.storage.exists(sha256):
                log.warning("file %s is not on this device; the centre will hold the item", sha256)
                continue
            self._upload_one(sha256)
            done.add(sha256)
            count += 1
        self._uploaded = done
        return count

    def _upload_one(self, sha256: str) -> None:
        path = f"/api/v1/uploads/{sha256}"
        state = self._send("GET", path)
        found = state.json()
        if state.status == 200 and isinstance(found, dict) and found.get("complete"):
            return
        offset = int(found.get("received") or 0) if state.status == 200 and isinstance(found, dict) else 0
        with self.storage.open(sha256) as stream:
            size = _size(stream)
            self._put_parts(path, stream, size, offset)

    def _put_parts(self, path: str, stream: BinaryIO, size: int, offset: int) -> None:
        for _ in range(size // max(self.part, 1) + 3):
            stream.seek(offset)
            chunk = stream.read(self.part)
            answer = self._send("PUT", path, query={"size": size, "offset": offset}, raw=chunk)
            found = answer.json()
            if not isinstance(found, dict):
                raise Unreachable(f"the centre's answer to an upload was not JSON (HTTP {answer.status})")
            if answer.status in (200, 201) and found.get("complete"):
                self.report.uploaded_bytes += len(chunk)
                return
            if answer.status == 409 and "received" in found:  # upload_gap: start again from what it has
                offset = int(found["received"])
                continue
            if answer.status != 200:
                log.warning("upload of %s refused: %s", path, found.get("error"))
                return  # the item is answered held or refused on push, and shown to the assessor
            self.report.uploaded_bytes += len(chunk)
            offset = int(found.get("received", offset + len(chunk)))
        raise Unreachable("an upload made no progress")

    # --- Files ------------------------------------------------------------------------------------------

    def download_media(self) -> None:
        """Fetch the files the device's evidence names and its storage lacks; what fails waits for the next sync.

        The pulled rows are already applied, so a file that does not arrive whole and verified is not an error of
        the sync: it is counted as still to download. A failed connection (or a full disk) ends this round's
        downloads; only the centre's refusal of the sign-in or of this version stops the round, as anywhere.
        """
        if self.storage is None:
            return
        with Session(self.engine) as session:
            wanted = downloads.missing(session, self.storage)
        for blob in wanted:
            try:
                if downloads.fetch(self.engine, self.storage, self._download, blob):
                    self.report.files_downloaded += 1
            except (Unreachable, OSError) as exc:
                log.warning("downloads stopped for this sync: %s", exc)
                break
        self.report.files_waiting = len(wanted) - self.report.files_downloaded

    def _download(self, path: str, out: BinaryIO) -> Response:
        self.report.requests += 1
        return self._check(download(self.transport, path, out, {**headers(self.token), "Accept": "*/*"}))

    # --- Pull -------------------------------------------------------------------------------------------

    def pull(self, limit: int | None = None, before_apply: Callable[[dict], None] | None = None) -> None:
        """Pull pages until the centre has no more, each applied with its cursor in one transaction; learn the
        centre's clock and what it keeps from this device on the way."""
        with Session(self.engine) as session:
            state = session.get(SyncState, 1)
            cursor = state.cursor if state else None
        for number in range(100_000):
            query = {"limit": limit} if limit else {}
            if cursor is not None:
                query["after"] = cursor
            sent_at = utcnow()
            answer = self._send("GET", "/api/v1/pull", query=query)
            page = answer.json()
            if answer.status == 409 and isinstance(page, dict) and page.get("error") == "resync_required":
                cursor = None  # the centre cannot go on from here (restored from a backup?): fetch everything
                continue
            if answer.status != 200 or not isinstance(page, dict) or "cursor" not in page:
                raise Unreachable(f"the centre's answer to a pull was not a page (HTTP {answer.status})")
            if number == 0 or self.centre_holds is None:
                self._learn(page, sent_at, utcnow())
            if before_apply is not None:
                before_apply(page)
            self.report.pulled_rows += apply_page(self.engine, page)
            cursor = page["cursor"]
            if not page.get("more"):
                break

    def _learn(self, page: dict, sent_at: datetime, received_at: datetime) -> None:
        """Keep the centre's clock against this device's (G24), and what the centre keeps from it (G21)."""
        held = page.get("acknowledged")
        self.centre_holds = held if isinstance(held, dict) else None
        try:
            centre = datetime.fromisoformat(str(page["now"]))
        except (KeyError, ValueError):
            return  # an older centre: the device does not judge dates by its own clock alone
        offset = (clock.aware(centre) - (sent_at + (received_at - sent_at) / 2)).total_seconds()
        with transaction(self.engine) as session:
            state = session.get(SyncState, 1)
            if state is not None:  # with this device's time it was learned at, to tell if the clock goes back
                state.clock_offset, state.last_attempt_at = offset, received_at
                session.add(state)

    def reconcile(self) -> int:
        """Check that the centre still keeps every answer it gave this device, and queue again, under their own
        ids, the items it no longer has (a restore from backup, a lost disk); return how many (G21)."""
        if self.centre_holds is None:
            return 0
        with Session(self.engine) as session:
            mine = outbox.acknowledged_ids(session)
        if acknowledged_digest(mine) == {"count": self.centre_holds.get("count"),
                                         "digest": self.centre_holds.get("digest")}:
            return 0
        answer = self._send("POST", "/api/v1/receipts", body={"item_ids": [str(i) for i in mine]})
        found = answer.json()
        lost = found.get("missing") if answer.status == 200 and isinstance(found, dict) else None
        if not isinstance(lost, list):
            raise Unreachable(f"the centre's answer to a receipt check was not a list (HTTP {answer.status})")
        with transaction(self.engine) as session:
            count = outbox.send_again(session, [uuid.UUID(str(i)) for i in lost],
                                      "Sent again: the centre no longer had it (it may have been restored from a "
                                      "backup).")
        self.report.sent_again += count
        return count


@dataclass(frozen=True)
class Queued:
    """An item about to be pushed, its payload as the JSON text the outbox stores."""

    item_id: uuid.UUID
    seq: int
    kind: str
    text: str | None
    state: str
    code: str | None
    attempts: int
    evidence_id: uuid.UUID | None

    @property
    def raw(self) -> str:
        """Return the payload as JSON text."""
        return "null" if self.text is None else self.text

    @property
    def payload(self) -> Any:
        """Return the payload as data."""
        return json.loads(self.raw)

    @property
    def media(self) -> set[str]:
        """Return the files the payload declares; a payload that names no sha256 declares none, unread."""
        return outbox.media_of(self.payload) if 'sha256"' in self.raw else set()


def _smaller_limit(answer: Response, found: Any, sent: int) -> int | None:
    """Return the centre's own batch limit if it refused a batch as too large, else None."""
    if answer.status != 413 or not isinstance(found, dict) or found.get("error") != "batch_too_large":
        return None
    limit = found.get("limit")
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < sent else None


def _state_for(sent: Any, verdict: dict, now: datetime) -> dict[str, Any]:
    """Return how a verdict leaves an item: accepted (at ``now``, when the answer came), waiting, for the assessor,
    or to be sent again."""
    kind, code, message = verdict.get("verdict"), verdict.get("code"), verdict.get("message")
    # A centre older than the "kept" field keeps every applied, refused and conflict answer but these.
    kept = verdict.get("kept", kind in ("applied", "duplicate", "refused", "conflict")
                       and code not in ("server_busy", "server_error", "item_changed", "item_id_in_use", "seq_reused"))
    change = {"state": outbox.attempted_state(sent.state), "code": code, "message": message, "sent_at": None,
              "acknowledged": bool(kept)}
    if kind in ("applied", "duplicate"):
        change.update(state=outbox.SENT, sent_at=now)
    elif kind == "conflict":
        change["state"] = outbox.CONFLICT
    elif kind == "refused" and code not in ("server_busy", "server_error"):
        change["state"] = outbox.PARKED
    elif kind == "refused" and code == "server_error" and sent.attempts >= MAX_SERVER_ERRORS:
        # Tried and failed at the centre again and again: it will not store this item by itself (G25).
        change.update(state=outbox.PARKED, message=f"The centre failed to store this item {sent.attempts} times. "
                                                   "Tell the centre's administrator (the error is in its log); "
                                                   "the item stays here until it is sent or you discard it.")
    elif kind == "held":
        change["state"] = outbox.HELD
    return change


def _blocked_by(first: OutboxItem) -> dict[str, str]:
    """Say why a change waits for an earlier one on the same evidence that the assessor has to settle."""
    if first.state == outbox.CONFLICT:
        return {"code": "conflict_open", "message": "Waits until you resolve the conflict on this evidence "
                                                    "(on the Sync page)."}
    return {"code": "waits_for_refused", "message": f"Waits for item {first.seq} on the same evidence, which the "
                                                    "centre refused: correct or discard it on the Sync page."}


def _has_state(engine: Engine) -> bool:
    with Session(engine) as session:
        return session.get(SyncState, 1) is not None


def _size(stream: BinaryIO) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


# --- Applying a pulled page ---------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _model(table: str) -> type[SQLModel] | None:
    return next((m.class_ for m in SQLModel._sa_registry.mappers if m.local_table.name == table), None)


def _convert(table: Any, row: dict[str, Any]) -> dict[str, Any]:
    """Turn a row as JSON into column values: uuids, datetimes and dates back from text."""
    out = {}
    for column in table.columns:
        if column.name not in row:
            continue
        value = row[column.name]
        kind = getattr(column.type, "impl", column.type)  # UTCDateTime and the like decorate a base type
        if value is not None and isinstance(value, str):
            if isinstance(kind, Uuid):
                value = uuid.UUID(value)
            elif isinstance(kind, DateTime):
                value = datetime.fromisoformat(value)
            elif isinstance(kind, Date):
                value = date.fromisoformat(value)
        out[column.name] = value
    return out


def apply_page(engine: Engine, page: dict[str, Any]) -> int:
    """Upsert a page's rows and write its cursor, all in one local transaction (G9, G11); return rows applied.

    Evidence with unsent changes here is not overwritten; where the centre kept one of them as a conflict, its
    own copy is kept beside this device's, for the assessor to compare and decide (G13)."""
    applied = 0
    tables = page.get("tables") or {}
    with transaction(engine) as session:
        keep = outbox.unsent_evidence(session)
        _copy_conflicts(session, tables, outbox.conflicted_evidence(session))
        keep_versions = _versions_of(session, keep, tables.get("evidenceversion", []))
        removed = page.get("removed") or {}
        if removed.get("candidate"):
            _remove_candidates(session, [uuid.UUID(c) for c in removed["candidate"]])
        # Evidence deleted at the centre goes, unless it has unsent changes here: those stay readable and the
        # centre's refusal ("deleted") shows on the Sync page for the assessor to settle (G15).
        _remove_evidence(session, [e for e in map(uuid.UUID, removed.get("evidence") or []) if e not in keep])
        _drop_replaced_versions(session, tables, keep)
        for name in TABLES:
            model = _model(name)
            rows = tables.get(name) or []
            if model is None or not rows:
                continue
            table = model.__table__
            if name == "evidenceversion":  # a version names the one it replaces, so earlier ones go in first
                rows = sorted(rows, key=lambda r: (str(r["evidence_id"]), r["number"]))
            values = [_convert(table, raw) for raw in rows if not _protected(name, raw, keep, keep_versions)]
            for value in values:
                value.pop("password_hash", None)  # never received; the device keeps its own
            _upsert_all(session, table, values)
            applied += len(values)
        state = session.get(SyncState, 1)
        if state is not None:
            state.cursor = page.get("cursor")
            session.add(state)
    return applied


def _copy_conflicts(session: Session, tables: dict[str, list], conflicted: set[uuid.UUID]) -> None:
    """Keep the centre's copy of each piece of evidence this device holds a conflict on, rows table by table."""
    for raw in tables.get("evidence") or []:
        evidence_id = uuid.UUID(str(raw["id"]))
        if evidence_id not in conflicted:
            continue
        versions = [v for v in tables.get("evidenceversion") or [] if uuid.UUID(str(v["evidence_id"])) == evidence_id]
        ids = {str(v["id"]) for v in versions}
        rows = {"evidence": [raw], "evidenceversion": versions} | {
            name: [r for r in tables.get(name) or [] if str(r.get("version_id")) in ids] for name in EVIDENCE_CHILDREN}
        current = next((v for v in versions if v["number"] == raw["current_version"]), None)
        if current is None:
            continue
        session.merge(ConflictCopy(evidence_id=evidence_id, centre_hash=current["content_hash"],
                                   centre_version=current["number"], rows=rows, pulled_at=utcnow()))


def _drop_replaced_versions(session: Session, tables: dict[str, list], keep: set[uuid.UUID]) -> None:
    """Drop local versions the centre's snapshot replaces (the centre numbers a pushed version under its own id)."""
    from tracker.models import Attachment, EvidenceCriterion, EvidenceRangeItem, EvidenceReview, Signature

    pulled = {uuid.UUID(str(r["id"])) for r in tables.get("evidenceversion") or []}
    evidence_ids = {uuid.UUID(str(r["evidence_id"])) for r in tables.get("evidenceversion") or []} - keep
    if not evidence_ids:
        return
    stale = [v for v in session.exec(select(EvidenceVersion.id).where(
        col(EvidenceVersion.evidence_id).in_(evidence_ids))) if v not in pulled]
    if not stale:
        return
    for model in (EvidenceCriterion, EvidenceRangeItem, Attachment, Signature, EvidenceReview):
        session.exec(delete(model).where(col(model.version_id).in_(stale)))
    session.exec(update(EvidenceVersion).where(col(EvidenceVersion.evidence_id).in_(evidence_ids))
                 .values(replaces_id=None))
    session.exec(delete(EvidenceVersion).where(col(EvidenceVersion.id).in_(stale)))
    session.expire_all()


def _versions_of(session: Session, evidence_ids: set[uuid.UUID], pulled: list[dict]) -> set[str]:
    """Return the versions (as text) of evidence with unsent changes, local or just pulled."""
    local = session.exec(select(EvidenceVersion.id).where(col(EvidenceVersion.evidence_id).in_(evidence_ids))) \
        if evidence_ids else []
    return {str(v) for v in local} | {str(r["id"]) for r in pulled if uuid.UUID(r["evidence_id"]) in evidence_ids}


def _protected(name: str, raw: dict, keep: set[uuid.UUID], keep_versions: set[str]) -> bool:
    """Say whether a pulled row would overwrite evidence with unsent local changes (G11)."""
    if name == "evidence":
        return uuid.UUID(str(raw["id"])) in keep
    if name == "evidenceversion":
        return str(raw["id"]) in keep_versions
    if name in EVIDENCE_CHILDREN:
        return str(raw.get("version_id")) in keep_versions
    return False


def _upsert_all(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert or update rows by primary key, one statement per shape of row (the device is SQLite)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    for shape, group in shapes.items():
        session.execute(_upsert(table, shape), group)


@lru_cache(maxsize=256)
def _upsert(table: Any, shape: tuple[str, ...]) -> Any:
    """Return the upsert of rows with these columns into a table, built once: building one costs more than
    running it for a page of rows."""
    from sqlalchemy.dialects.sqlite import insert

    keys = [c.name for c in table.primary_key.columns]
    statement = insert(table)
    others = {name: statement.excluded[name] for name in shape if name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=others) if others else \
        statement.on_conflict_do_nothing(index_elements=keys)


def _remove_candidates(session: Session, candidate_ids: list[uuid.UUID]) -> None:
    """Delete what the device holds about candidates that have left its scope (G16); its queue stays."""
    from tracker.models import Candidate, CandidateAssignment, CriterionDecision, DecisionEvidence

    _remove_evidence(session, list(session.exec(select(Evidence.id).where(
        col(Evidence.candidate_id).in_(candidate_ids)))))
    decisions = select(CriterionDecision.id).where(col(CriterionDecision.candidate_id).in_(candidate_ids))
    session.exec(delete(DecisionEvidence).where(col(DecisionEvidence.decision_id).in_(decisions)))
    for model in _candidate_tables():
        session.exec(delete(model).where(col(model.candidate_id).in_(candidate_ids)))
    session.exec(delete(CandidateAssignment).where(col(CandidateAssignment.candidate_id).in_(candidate_ids)))
    session.exec(delete(Candidate).where(col(Candidate.id).in_(candidate_ids)))


def _remove_evidence(session: Session, evidence_ids: list[uuid.UUID]) -> None:
    """Delete pieces of evidence with their versions, links, signatures, reviews and decision links."""
    from tracker.models import (
        Attachment,
        DecisionEvidence,
        EvidenceCriterion,
        EvidenceRangeItem,
        EvidenceReview,
        Signature,
    )

    if not evidence_ids:
        return
    version_ids = list(session.exec(select(EvidenceVersion.id).where(
        col(EvidenceVersion.evidence_id).in_(evidence_ids))))
    for model in (EvidenceCriterion, EvidenceRangeItem, Attachment, Signature):
        session.exec(delete(model).where(col(model.version_id).in_(version_ids)))
    session.exec(delete(EvidenceReview).where(col(EvidenceReview.evidence_id).in_(evidence_ids)))
    session.exec(delete(DecisionEvidence).where(col(DecisionEvidence.evidence_id).in_(evidence_ids)))
    session.exec(update(EvidenceVersion).where(col(EvidenceVersion.evidence_id).in_(evidence_ids))
                 .values(replaces_id=None))
    session.exec(delete(EvidenceVersion).where(col(EvidenceVersion.evidence_id).in_(evidence_ids)))
    session.exec(delete(Evidence).where(col(Evidence.id).in_(evidence_ids)))


def _candidate_tables() -> list[type[SQLModel]]:
    from tracker.models import AssignmentResult, CriterionDecision, UnitSignOff

    return [AssignmentResult, UnitSignOff, CriterionDecision]
