"""The centre's side of a push: apply a device's queued items once each, each with its own verdict.

A push is a list of items ``{"item_id", "seq", "kind", "payload"}``. ``item_id`` is made on the device when the
item is queued (G1); ``seq`` is the device's own order, in which a batch is applied. Kinds and their payloads:

- ``evidence.capture``: the fields of ``EvidenceIn``; ``id``, the evidence id made on the device, is required.
- ``evidence.revise``: ``{"evidence_id", "base_hash", "base_version", "content": {ContentIn fields},
  "signatures": [...]}``.
- ``evidence.sign``: ``{"evidence_id", "version", "content_hash", "signature": {SignatureIn fields}}``.
- ``evidence.submit``: ``{"evidence_id", "version", "content_hash"}``.
- ``conflict.resolve``: ``{"item_id", "choice"}``: the assessor settled a conflict (``device``, ``centre`` or
  ``merged``).

An item waits only for what it depends on (G12): a revision for the version it changes, a signature or a submission
for the version it names, any item for the files it declares. The version is named by its content hash (G4); a
device that sends only a number is judged by the number. A dependency the centre does not hold yet answers
``held`` with what is missing, and nothing unrelated waits. A change made on a version the centre has since replaced
is a ``conflict``: both are kept (``SyncConflict``) until a person decides (G13).

Verdicts: ``applied``, ``duplicate`` (a repeat: the first answer's result, nothing written), ``conflict``,
``refused`` and ``held``. Every applied, conflict or refused answer is kept as a ``SyncReceipt`` in the same
transaction as the change, so a repeat gets the same answer, and a device can check that the centre still holds
all it acknowledged (G21). The caller commits, and must not send the answers unless the commit succeeds. If the
device's lock cannot be had in time, the session is rolled back and every item is answered ``server_busy``, to be
sent again. Content the database cannot store is refused with its own code and kept as refused (G25).

A run of captures of new evidence (the bulk of a day's work) is checked item by item by the evidence service's
own rules, as it arrives, and written together: one insert per table, one run of the audit chain and the receipts.
Nothing is written for an item the rules refuse, so each item stays all or nothing. Any other item writes the run
first, so it sees everything before it; a run that cannot be written (a key taken meanwhile by another request,
a fault) is undone and its items are applied one by one, as any other item is.
"""
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlmodel import Session, col, select

from sync import MAX_SEQ
from tracker.audit import Actor, record
from tracker.db import insert_many
from tracker.errors import InvalidInput, NotFound, NotPermitted, Refusal
from tracker.hashing import canonical_json, text_hash
from tracker.models import (
    Blob,
    BlobHolder,
    Device,
    Evidence,
    EvidenceVersion,
    SyncConflict,
    SyncReceipt,
    Tombstone,
    User,
    utcnow,
)
from tracker.services import evidence, steady, validate
from tracker.services.evidence import SHA256, SignatureIn

from .tokens import revoked_refusal

log = logging.getLogger(__name__)

APPLIED, DUPLICATE, CONFLICT, REFUSED, HELD = "applied", "duplicate", "conflict", "refused", "held"
SHA256_RE = re.compile(SHA256)
CONFLICT_CODES = frozenset({"conflict", "out_of_date"})  # the services' answers for "someone else changed it"
RETRY = "The device will send it again; nothing has been lost."


@dataclass(frozen=True)
class Verdict:
    """The centre's answer to one pushed item."""

    item_id: uuid.UUID | None
    seq: int | None
    verdict: str
    code: str | None = None
    message: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    kept: bool = False  # the centre keeps a receipt of this answer for this device, which the device checks (G21)

    def as_dict(self) -> dict[str, Any]:
        """Return the answer as plain JSON data."""
        return {"item_id": None if self.item_id is None else str(self.item_id), "seq": self.seq,
                "verdict": self.verdict, "code": self.code, "message": self.message, "result": self.result,
                "kept": self.kept}


class _ItemIn(BaseModel):
    """The envelope of a pushed item; unknown envelope fields are ignored so newer devices keep working (G17)."""

    model_config = ConfigDict(extra="ignore")
    item_id: uuid.UUID
    seq: int = Field(ge=1, le=MAX_SEQ, strict=True)
    kind: str = Field(min_length=1, max_length=40)
    payload: Any = None


@dataclass(frozen=True)
class _Item:
    """A pushed item whose envelope is sound, with the canonical hash of what it asks for (G3)."""

    item_id: uuid.UUID
    seq: int
    kind: str
    payload: Any
    digest: str

    @cached_property
    def evidence_id(self) -> uuid.UUID | None:
        """Return the evidence the item concerns, if its payload names one (read once: a batch asks often)."""
        payload = self.payload if isinstance(self.payload, dict) else {}
        raw = payload.get("id") if self.kind == "evidence.capture" else payload.get("evidence_id")
        try:
            return uuid.UUID(str(raw)) if raw else None
        except ValueError:
            return None

    @cached_property
    def media(self) -> set[str]:
        """Return the files the item declares."""
        return _declared_media(self.payload)


# --- The batch --------------------------------------------------------------------------------------------


def apply_batch(session: Session, device: Device, user: User, items: list[dict], today: date) -> list[Verdict]:
    """Apply a device's items in seq order, each all or nothing, and answer each in the order sent."""
    _check_device(device, user)
    if not isinstance(items, list):
        raise InvalidInput("A push is a list of items.", field="items")
    parsed = [_parse(raw) for raw in items]
    if not _lock_device(session, device):
        return [_busy(p) for p in parsed]
    actor = Actor(user, device_id=device.id, today=today)
    answers = {i: p for i, p in enumerate(parsed) if isinstance(p, Verdict)}
    order = sorted((i for i in range(len(parsed)) if i not in answers), key=lambda i: parsed[i].seq)
    # Pushed items only add and sign evidence, so the facts the rules read hold still for the whole batch.
    with steady(session):
        run = _Run(session, device, actor, _Known.read(session, user, device.id, [parsed[i] for i in order]))
        for i in order:
            if run.takes(i, parsed[i]):
                continue
            run.write(answers)
            answers[i] = _answer(session, device, actor, parsed[i])
        run.write(answers)
    return [answers[i] for i in range(len(parsed))]


def _check_device(device: Device, user: User) -> None:
    if device.user_id != user.id:
        raise NotPermitted("This device belongs to someone else.")
    if device.revoked_at is not None:
        raise revoked_refusal(device)


def _lock_device(session: Session, device: Device) -> bool:
    """Stamp the push on the device row; the write also makes one device's pushes take turns."""
    # PostgreSQL holds the row lock, SQLite the database write lock, until commit: a second push from the same
    # device waits, then sees the first one's receipts. Writing first also puts the item savepoints inside a
    # real transaction on SQLite.
    device_id = device.id
    try:
        device.last_push_at = utcnow()
        session.add(device)
        session.flush()
    except OperationalError:
        session.rollback()  # first: nothing can be read from a session whose flush failed
        log.warning("push from device %s: the database stayed busy", device_id, exc_info=True)
        return False
    return True


def _parse(raw: Any) -> _Item | Verdict:
    """Read an item's envelope, or answer it as refused."""
    try:
        item = validate(_ItemIn, raw)
        text = _canonical({"kind": item.kind, "payload": item.payload})
        if _unstorable(item.payload, text):
            # Refused before the database sees it, so SQLite and PostgreSQL give the same answer (G25).
            return Verdict(item.item_id, item.seq, REFUSED, "unstorable", UNSTORABLE)
        if text is None:
            raise TypeError("not plain data")
        digest = text_hash(text)
    except Refusal as refusal:
        return Verdict(_raw_id(raw), _raw_seq(raw), REFUSED, refusal.code, refusal.message)
    except (TypeError, ValueError):
        return Verdict(_raw_id(raw), _raw_seq(raw), REFUSED, "invalid_input", "The item's payload is not plain data.")
    return _Item(item.item_id, item.seq, item.kind, item.payload, digest)


def _raw_id(raw: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(raw["item_id"]))
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def _raw_seq(raw: Any) -> int | None:
    seq = raw.get("seq") if isinstance(raw, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _busy(parsed: _Item | Verdict) -> Verdict:
    if isinstance(parsed, Verdict):
        return parsed
    return _verdict(parsed, REFUSED, "server_busy", f"The centre was too busy to take this item. {RETRY}")


# --- A run of new captures, checked one by one and written together ------------------------------------------


@dataclass
class _Known:
    """What the centre already holds for a batch's items, read in a few queries instead of per item."""

    receipts: set[uuid.UUID]  # items answered before
    evidence: set[uuid.UUID]  # evidence stored or deleted at the centre
    held: set[str]  # files this person has sent whole
    seqs: set[int]  # the batch's seqs this device has already used for items answered before

    @classmethod
    def read(cls, session: Session, user: User, device_id: uuid.UUID, items: list[_Item]) -> "_Known":
        """Read the receipts, evidence, tombstones and files the items name."""
        item_ids = [i.item_id for i in items]
        evidence_ids = [i.evidence_id for i in items if i.evidence_id is not None]
        hashes = {h for i in items for h in i.media}
        seqs = [i.seq for i in items]
        return cls(
            set(session.exec(select(SyncReceipt.item_id).where(col(SyncReceipt.item_id).in_(item_ids))))
            if item_ids else set(),
            set(session.exec(select(Evidence.id).where(col(Evidence.id).in_(evidence_ids)))) | set(session.exec(
                select(Tombstone.entity_id).where(col(Tombstone.entity_id).in_(evidence_ids))))
            if evidence_ids else set(),
            set(session.exec(select(BlobHolder.sha256).join(Blob).where(
                col(BlobHolder.sha256).in_(hashes), BlobHolder.user_id == user.id))) if hashes else set(),
            set(session.exec(select(SyncReceipt.seq).where(SyncReceipt.device_id == device_id,
                                                           col(SyncReceipt.seq).in_(seqs)))) if seqs else set())


class _Run:
    """New evidence captured on the device, each checked by the evidence service's own rules as it comes, then
    written in one go; any other item first writes the run, so every item still sees those before it."""

    def __init__(self, session: Session, device: Device, actor: Actor, known: _Known):
        self.session, self.device, self.actor, self.known = session, device, actor, known
        self.items: list[tuple[int, _Item, evidence.Capture | None, Verdict]] = []

    def takes(self, index: int, item: _Item) -> bool:
        """Check the item into the run if it is a first capture of new evidence; say whether it was taken."""
        evidence_id = item.evidence_id
        if (item.kind != "evidence.capture" or item.item_id in self.known.receipts or item.seq in self.known.seqs
                or evidence_id in self.known.evidence or not item.media <= self.known.held):
            return False
        try:
            checked = evidence.check_capture(self.session, self.actor, _with_id(item.payload), new=True)
        except Refusal as refusal:
            checked, verdict = None, _refusal(item, refusal)
        except Exception:  # noqa: BLE001 - the item is answered on its own, which logs what went wrong
            return False
        else:
            verdict = _verdict(item, APPLIED, result=_result_of(checked.evidence))
        self.items.append((index, item, checked, replace(verdict, kept=True)))
        self.known.receipts.add(item.item_id)
        self.known.seqs.add(item.seq)
        if evidence_id is not None:
            self.known.evidence.add(evidence_id)
        return True

    def write(self, answers: dict[int, Verdict]) -> None:
        """Write the run with its receipts; if that fails, answer its items one by one."""
        if not self.items:
            return
        run, self.items = self.items, []
        try:
            with self.session.begin_nested():
                evidence.write_captures(self.session, self.actor, [c for _, _, c, _ in run if c is not None])
                insert_many(self.session, SyncReceipt.__table__, [
                    _receipt(self.device, item, verdict) for _, item, _, verdict in run])
        except Exception as exc:  # noqa: BLE001 - a race on a key, or a fault: each item then gets its own answer
            # A key taken meanwhile is another request storing the same evidence: expected, and answered below.
            log.log(logging.INFO if isinstance(exc, IntegrityError) else logging.WARNING,
                    "a run of %d pushed captures could not be written together; applying them one by one", len(run),
                    exc_info=True)
            for index, item, _, _ in run:
                answers[index] = _answer(self.session, self.device, self.actor, item)
            return
        answers.update({index: verdict for index, _, _, verdict in run})


def _with_id(payload: Any) -> Any:
    """Return a capture's payload, refusing one without the id the device gave the evidence."""
    if isinstance(payload, dict) and not payload.get("id"):
        raise InvalidInput("Evidence from a device must carry the id the device gave it.", field="id")
    return payload


def _receipt(device: Device, item: _Item, verdict: Verdict) -> dict[str, Any]:
    return {"item_id": item.item_id, "device_id": device.id, "seq": item.seq, "kind": item.kind,
            "content_hash": item.digest, "verdict": verdict.verdict, "code": verdict.code,
            "message": verdict.message, "result": verdict.result, "received_at": utcnow()}


# --- One item ----------------------------------------------------------------------------------------------


UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE = ("The centre cannot store this item's content (it holds characters or values its database refuses). "
              "Correct it on the device and save it again.")


def _answer(session: Session, device: Device, actor: Actor, item: _Item) -> Verdict:
    """Answer one item, all or nothing; content the database cannot store is refused for good (G25)."""
    try:
        # The whole item runs in a savepoint, so even a failed lookup leaves the rest of the batch usable.
        with session.begin_nested():
            return _process(session, device, actor, item)
    except DataError:
        log.warning("push item %s from device %s holds content the database cannot store", item.item_id,
                    actor.device_id, exc_info=True)
        return _keep_answer(session, device, item, _verdict(item, REFUSED, "unstorable", UNSTORABLE))
    except Exception:
        log.exception("push item %s (seq %s) from device %s failed", item.item_id, item.seq, actor.device_id)
        return _server_error(item)


def _process(session: Session, device: Device, actor: Actor, item: _Item) -> Verdict:
    receipt = session.get(SyncReceipt, item.item_id)
    if receipt is not None:
        return _replay(session, device, item, receipt)
    if _seq_used(session, device, item):
        return _verdict(item, CONFLICT, "seq_reused", f"This device already sent a different item as number "
                                                      f"{item.seq}; this one has not been applied.")
    if deleted := _tombstoned(session, item):
        # Not recreated, and kept, so every repeat of the item gets the same answer (G15).
        return _keep(session, device, item, _verdict(item, REFUSED, "deleted", f"This evidence was deleted at the "
                                                                                f"centre ({deleted}); it has not "
                                                                                "been recreated."))
    if absent := _missing_media(session, actor.user, item):
        # Not kept: the device uploads the files and sends the item again (G6).
        return _verdict(item, HELD, "media_missing", f"{len(absent)} attached file(s) have not reached the centre "
                                                     "yet; the item will be applied once they have.",
                        {"missing": sorted(absent)})
    if waiting := _missing_dependency(session, item):
        # Not kept: only this item waits, for what it names; the device sends that again if it had gone (G12).
        return waiting
    return _apply(session, device, actor, item)


def _canonical(value: Any) -> str | None:
    """Return a value's canonical JSON, or None if it is not plain data."""
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return None


def _unstorable(value: Any, text: str | None = None) -> bool:
    """Say whether any text in a payload holds a NUL or a lone surrogate, which no database here can store."""
    if text is not None and "\\u0000" not in text:
        # Its canonical JSON spells any NUL as \u0000 and keeps a lone surrogate as it is.
        return UNSTORABLE_TEXT.search(text) is not None
    if isinstance(value, str):
        return UNSTORABLE_TEXT.search(value) is not None
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def _seq_used(session: Session, device: Device, item: _Item) -> bool:
    """Say whether this device's seq already belongs to another item the centre answered."""
    return session.exec(select(SyncReceipt.item_id).where(SyncReceipt.device_id == device.id,
                                                          SyncReceipt.seq == item.seq)).first() is not None


# --- What an item depends on --------------------------------------------------------------------------------


def _named_version(item: _Item) -> tuple[str | None, int | None]:
    """Return the version an item names as its base: by content hash, and by number."""
    payload = item.payload if isinstance(item.payload, dict) else {}
    if item.kind == "evidence.revise":
        digest, number = payload.get("base_hash"), payload.get("base_version")
    elif item.kind in ("evidence.sign", "evidence.submit"):
        digest, number = payload.get("content_hash"), payload.get("version")
    else:
        return None, None
    return (digest if isinstance(digest, str) and SHA256_RE.fullmatch(digest) else None,
            number if isinstance(number, int) and not isinstance(number, bool) else None)


def _missing_dependency(session: Session, item: _Item) -> Verdict | None:
    """Hold an item whose evidence, or the version it names, has not reached the centre."""
    if item.kind not in ("evidence.revise", "evidence.sign", "evidence.submit"):
        return None
    try:
        validate(SHAPES[item.kind], item.payload)
    except Refusal:
        return None  # malformed: refused when applied, not held
    evidence_id = item.evidence_id
    stored = session.get(Evidence, evidence_id)
    if stored is None:
        return _verdict(item, HELD, "dependency_missing", "The evidence this change belongs to has not reached the "
                                                          "centre yet; the change will be applied once it has.",
                        {"evidence_id": str(evidence_id)})
    digest, number = _named_version(item)
    if digest is not None and digest not in _version_hashes(session, evidence_id) or (
            digest is None and number is not None and number > stored.current_version):
        return _verdict(item, HELD, "dependency_missing", "The version this change is made on has not reached the "
                                                          "centre yet; the change will be applied once it has.",
                        {"evidence_id": str(evidence_id), "content_hash": digest, "version": number})
    return None


def _version_hashes(session: Session, evidence_id: uuid.UUID) -> dict[str, int]:
    """Return each of a piece of evidence's version hashes with its number."""
    return dict(session.exec(select(EvidenceVersion.content_hash, EvidenceVersion.number)
                             .where(EvidenceVersion.evidence_id == evidence_id)).all())


def _tombstoned(session: Session, item: _Item) -> str | None:
    """Return why the item's evidence was deleted at the centre, or None if it was not."""
    evidence_id = item.evidence_id
    stone = session.get(Tombstone, evidence_id) if evidence_id else None
    return None if stone is None else (stone.reason or "withdrawn")


def _declared_media(payload: Any) -> set[str]:
    """Return the sha256 of every file an item's payload declares: attachments and signature images."""
    found: set[str] = set()
    if not isinstance(payload, dict):
        return found
    for holder in (payload, payload.get("content")):
        if isinstance(holder, dict) and isinstance(holder.get("attachments"), list):
            found |= {a["sha256"] for a in holder["attachments"] if isinstance(a, dict)
                      and isinstance(a.get("sha256"), str) and SHA256_RE.match(a["sha256"])}
    signatures = list(payload.get("signatures") or []) if isinstance(payload.get("signatures"), list) else []
    if isinstance(payload.get("signature"), dict):
        signatures.append(payload["signature"])
    found |= {s["image_sha256"] for s in signatures if isinstance(s, dict)
              and isinstance(s.get("image_sha256"), str) and SHA256_RE.match(s["image_sha256"])}
    return found


def _missing_media(session: Session, user: User, item: _Item) -> set[str]:
    """Return the declared files the centre does not hold whole yet, or holds but this person has not sent."""
    return evidence.unproven(session, user, set(item.media))


def _replay(session: Session, device: Device, item: _Item, receipt: SyncReceipt) -> Verdict:
    """Answer an item already received: the same answer again, or a conflict if its content changed (G2)."""
    if receipt.device_id != device.id and session.get(Device, receipt.device_id).user_id != device.user_id:
        return _verdict(item, CONFLICT, "item_id_in_use", "Another device already sent an item with this id; this "
                                                          "one has not been applied.")
    if receipt.content_hash != item.digest:
        return _verdict(item, CONFLICT, "item_changed", "This item was received before with different content. The "
                                                        "centre's copy has not been changed; save the change as a "
                                                        "new item.")
    # A receipt kept under another of this person's devices is not this device's to count (G21).
    kept = receipt.device_id == device.id
    if receipt.verdict == APPLIED:
        return replace(_verdict(item, DUPLICATE, None, "Already received; nothing was changed.", receipt.result),
                       kept=kept)
    return replace(_verdict(item, receipt.verdict, receipt.code, receipt.message, receipt.result), kept=kept)


def _apply(session: Session, device: Device, actor: Actor, item: _Item) -> Verdict:
    """Carry out an item and keep its answer; a unique-key race becomes the winner's answer."""
    for _ in range(2):
        try:
            return _attempt(session, device, actor, item)
        except IntegrityError:
            # Another request (a concurrent retry, or another device of the same person) stored this item or its
            # evidence first; their commit is visible now.
            log.info("push item %s lost a race; answering from the stored copy", item.item_id)
            receipt = session.get(SyncReceipt, item.item_id, populate_existing=True)
            if receipt is not None:
                return _replay(session, device, item, receipt)
    return _server_error(item)


def _attempt(session: Session, device: Device, actor: Actor, item: _Item) -> Verdict:
    """Run the item's service call in a savepoint with its receipt; a refusal keeps only the receipt."""
    try:
        with session.begin_nested():
            return _keep(session, device, item, _verdict(item, APPLIED, result=_handler(item.kind)(
                session, actor, item.payload)))
    except Refusal as refusal:
        verdict = _refusal(item, refusal)
    with session.begin_nested():
        if verdict.verdict == CONFLICT and verdict.code == "out_of_date":
            _record_conflict(session, device, item)
        return _keep(session, device, item, verdict)


def _keep(session: Session, device: Device, item: _Item, verdict: Verdict) -> Verdict:
    session.add(SyncReceipt(**_receipt(device, item, verdict)))
    session.flush()
    return replace(verdict, kept=True)


def _keep_answer(session: Session, device: Device, item: _Item, verdict: Verdict) -> Verdict:
    """Keep an answer given after the item's own work was undone; if even that fails, the item is tried again."""
    try:
        with session.begin_nested():
            return _keep(session, device, item, verdict)
    except Exception:
        log.exception("the answer to push item %s could not be kept", item.item_id)
        return _server_error(item)


def _record_conflict(session: Session, device: Device, item: _Item) -> None:
    """Keep a device's change to a version the centre had replaced, beside the centre's, for a person (G13)."""
    stored = session.get(Evidence, item.evidence_id)
    current = evidence.current_version(session, stored)
    base_hash, _ = _named_version(item)
    session.add(SyncConflict(item_id=item.item_id, device_id=device.id, user_id=device.user_id,
                             evidence_id=stored.id, candidate_id=stored.candidate_id, kind=item.kind,
                             base_hash=base_hash, centre_hash=current.content_hash, centre_version=current.number,
                             proposed=item.payload if isinstance(item.payload, dict) else {}))
    session.flush()


def _refusal(item: _Item, refusal: Refusal) -> Verdict:
    """Turn a service's refusal into a verdict with the same code and message as on the web (G20)."""
    verdict = CONFLICT if refusal.code in CONFLICT_CODES else REFUSED
    return _verdict(item, verdict, refusal.code, refusal.message, {"field": refusal.field} if refusal.field else {})


def _verdict(item: _Item, verdict: str, code: str | None = None, message: str | None = None,
             result: dict[str, Any] | None = None) -> Verdict:
    return Verdict(item.item_id, item.seq, verdict, code, message, result or {})


def _server_error(item: _Item) -> Verdict:
    # Not kept: the device sends the item again, and only it waits (G12).
    return _verdict(item, REFUSED, "server_error", f"The centre could not store this item just now. {RETRY}")


# --- The kinds -------------------------------------------------------------------------------------------------


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ReviseIn(_In):
    evidence_id: uuid.UUID
    base_hash: str | None = Field(default=None, pattern=SHA256)  # the version changed; older devices send a number
    base_version: int = Field(ge=1)
    content: Any = None
    signatures: list[SignatureIn] = Field(default=[], max_length=10)


class _AtVersionIn(_In):
    evidence_id: uuid.UUID
    version: int = Field(ge=1)
    content_hash: str | None = Field(default=None, pattern=SHA256)


class _SignIn(_AtVersionIn):
    signature: Any = None


class _ResolveIn(_In):
    item_id: uuid.UUID  # the item the conflict was recorded for
    choice: Literal["device", "centre", "merged"]


def _handler(kind: str) -> Callable[[Session, Actor, Any], dict[str, Any]]:
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidInput(f"The centre does not know how to apply a {kind!r} item. Known kinds: "
                           f"{', '.join(KINDS)}.", field="kind") from None


def _result(item: Evidence) -> dict[str, Any]:
    return {"evidence_id": str(item.id), "version": item.current_version, "status": item.status}


def _result_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"evidence_id": str(row["id"]), "version": row["current_version"], "status": row["status"]}


def _capture(session: Session, actor: Actor, payload: Any) -> dict[str, Any]:
    return _result(evidence.capture(session, actor, _with_id(payload)))


def _revise(session: Session, actor: Actor, payload: Any) -> dict[str, Any]:
    data = validate(_ReviseIn, payload)
    return _result(evidence.revise(session, actor, data.evidence_id, data.content, base_version=data.base_version,
                                   base_hash=data.base_hash, signatures=data.signatures))


def _sign(session: Session, actor: Actor, payload: Any) -> dict[str, Any]:
    data = validate(_SignIn, payload)
    item = _at_version(session, data)
    signature = evidence.sign(session, actor, item.id, data.signature)
    return _result(item) | {"signature_id": str(signature.id)}


def _submit(session: Session, actor: Actor, payload: Any) -> dict[str, Any]:
    data = validate(_AtVersionIn, payload)
    _at_version(session, data)
    return _result(evidence.submit(session, actor, data.evidence_id))


def _at_version(session: Session, data: _AtVersionIn) -> Evidence:
    """Return the evidence if it is still at the version the device saw, or refuse as out of date (G4).

    The version is named by its content hash; a number alone (older devices) is compared as a number."""
    item = evidence.get(session, data.evidence_id)
    current = evidence.current_version(session, item)
    same = current.content_hash == data.content_hash if data.content_hash else current.number == data.version
    if not same:
        raise Refusal("out_of_date", f"This evidence has changed since the device saw version {data.version}: it is "
                                     f"now at version {current.number}. Review the newer version first.")
    return item


def _resolve(session: Session, actor: Actor, payload: Any) -> dict[str, Any]:
    data = validate(_ResolveIn, payload)
    conflict = session.get(SyncConflict, data.item_id)
    if conflict is None or conflict.user_id != actor.id:
        raise NotFound("conflict")
    if conflict.resolved_at is None:
        conflict.resolved_at, conflict.resolved_by_id, conflict.resolution = utcnow(), actor.id, data.choice
        session.add(conflict)
        stored = evidence.get(session, conflict.evidence_id)
        record(session, actor, "sync.conflict_resolved", stored, item=str(conflict.item_id), choice=data.choice,
               version=evidence.current_version(session, stored).number)
    return {"item_id": str(conflict.item_id), "resolution": conflict.resolution}


KINDS: dict[str, Callable[[Session, Actor, Any], dict[str, Any]]] = {
    "evidence.capture": _capture,
    "evidence.revise": _revise,
    "evidence.sign": _sign,
    "evidence.submit": _submit,
    "conflict.resolve": _resolve,
}
SHAPES: dict[str, type[BaseModel]] = {"evidence.revise": _ReviseIn, "evidence.sign": _SignIn,
                                      "evidence.submit": _AtVersionIn}
