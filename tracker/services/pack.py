"""The portfolio pack: one candidate's whole record as an open, self-checking zip, to inspect or move between centres.

The format is documented in FORMAT.md and schema.json, both written into every pack (see pack_docs/).
"""
import hashlib
import io
import json
import re
import tempfile
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

from sqlmodel import Session, SQLModel, col, select

from ..audit import Actor, _utc, entry_hash, record
from ..errors import InvalidInput
from ..hashing import content_hash
from ..models import (
    AssessorQualification,
    AssignmentResult,
    Attachment,
    AuditEntry,
    Blob,
    BlobRendition,
    Candidate,
    Criterion,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    ExpertWitnessApproval,
    ImportedPack,
    IqaQualification,
    IqaReview,
    OccupationalCompetence,
    Outcome,
    Qualification,
    QualificationUnit,
    RangeItem,
    Role,
    RoleGrant,
    Signature,
    Unit,
    UnitSignOff,
    User,
    utcnow,
)
from .evidence import CONTENT_FIELDS, AttachmentIn, ContentIn, CriterionLink, version_content
from .inputs import CONTROL

FORMAT = "tracker-portfolio-pack"
FORMAT_VERSION = 1
MANIFEST, MANIFEST_HASH, CHECKSUMS, SUMMARY = "manifest.json", "manifest.sha256", "SHA256SUMS", "summary.pdf"
MAX_ENTRIES = 10_000  # files in one pack; a portfolio has a few hundred at most
MAX_TOTAL = 4 * 1024 ** 3  # bytes once unpacked; more is refused as a zip bomb
MAX_MANIFEST = 64 * 1024 ** 2
# Roles an imported account keeps: what the handbook rules read about a person, never a role that signs in to manage.
IMPORTED_ROLES = {Role.ASSESSOR, Role.EXPERT_WITNESS, Role.WITNESS, Role.CANDIDATE, Role.IQA}
SAFE_NAME = re.compile(r"^(?:media/[0-9a-f]{64}|[A-Za-z0-9_.-]+)$")
CREDENTIALS = {"assessor_qualifications": AssessorQualification, "competences": OccupationalCompetence,
               "expert_witness_approvals": ExpertWitnessApproval, "iqa_qualifications": IqaQualification}


class PackRefused(InvalidInput):
    """A file that is not a pack this tracker can read safely."""

    def __init__(self, message: str):
        super().__init__(message, code="pack_refused")


# --- Export ---------------------------------------------------------------------------------------------------


def _row(obj: SQLModel, *drop: str) -> dict[str, Any]:
    """Return a row as plain JSON data."""
    return obj.model_dump(mode="json", exclude=set(drop))


def manifest(session: Session, candidate: Candidate, centre: str) -> dict[str, Any]:
    """Gather everything the pack says about a candidate, as plain JSON data."""
    user = session.get(User, candidate.user_id)
    qualification = session.get(Qualification, candidate.qualification_id)
    units = list(session.exec(select(Unit).join(QualificationUnit, QualificationUnit.unit_id == Unit.id).where(
        QualificationUnit.qualification_id == qualification.id).order_by(QualificationUnit.position)))
    unit_code = {u.id: u.code for u in units}
    criteria = list(session.exec(select(Criterion, Outcome.number).join(Outcome).where(
        col(Criterion.unit_id).in_(list(unit_code))).order_by(Outcome.position, Criterion.position)))
    code_of = {c.id: c.code for c, _ in criteria}
    evidence = list(session.exec(select(Evidence).where(Evidence.candidate_id == candidate.id)
                                 .order_by(Evidence.created_at)))
    versions = list(session.exec(select(EvidenceVersion).where(
        col(EvidenceVersion.evidence_id).in_([e.id for e in evidence])).order_by(EvidenceVersion.number))) \
        if evidence else []
    links = _version_links(session, [v.id for v in versions], code_of)
    by_evidence: dict[uuid.UUID, list[dict]] = {e.id: [] for e in evidence}
    for v in versions:
        by_evidence[v.evidence_id].append(_row(v) | links[v.id])
    decisions = list(session.exec(select(CriterionDecision).where(CriterionDecision.candidate_id == candidate.id)
                                  .order_by(CriterionDecision.decided_at)))
    rests_on = _decision_evidence(session, [d.id for d in decisions])
    reviews = list(session.exec(select(EvidenceReview).where(
        col(EvidenceReview.evidence_id).in_(list(by_evidence))).order_by(EvidenceReview.created_at))) \
        if evidence else []
    sign_offs = list(session.exec(select(UnitSignOff).where(UnitSignOff.candidate_id == candidate.id)))
    iqa = list(session.exec(select(IqaReview).where(
        col(IqaReview.decision_id).in_([d.id for d in decisions]) | col(IqaReview.signoff_id).in_(
            [s.id for s in sign_offs])).order_by(IqaReview.created_at, IqaReview.id))) if decisions or sign_offs else []
    results = list(session.exec(select(AssignmentResult).where(AssignmentResult.candidate_id == candidate.id)))
    data = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "exported_at": _utc(utcnow()),
        "sending_centre": centre,
        "candidate": _row(candidate) | {"name": user.name, "email": user.email, "qualification": qualification.code},
        "qualification": {"code": qualification.code, "title": qualification.title,
                          "units": [{"code": u.code, "title": u.title, "criteria": [
                              {"code": c.code, "outcome": number, "text": c.text, "retired": c.retired}
                              for c, number in criteria if c.unit_id == u.id]} for u in units]},
        "evidence": [_row(e) | {"unit": unit_code[e.unit_id], "versions": by_evidence[e.id]} for e in evidence],
        "reviews": [_row(r) for r in reviews],
        "decisions": [_row(d) | {"criterion": code_of[d.criterion_id],
                                 "unit": _unit_of(criteria, d.criterion_id, unit_code),
                                 "evidence": sorted(rests_on.get(d.id, []))} for d in decisions],
        "iqa_reviews": [_row(r) for r in iqa],
        "sign_offs": [_row(s) | {"unit": unit_code[s.unit_id]} for s in sign_offs],
        "assignment_results": [_row(r) | {"unit": unit_code[r.unit_id]} for r in results],
        "audit": [_audit_row(a) for a in session.exec(select(AuditEntry).where(
            AuditEntry.candidate_id == candidate.id).order_by(AuditEntry.seq))],
    }
    data["people"], data["credentials"] = _people(session, data)
    data["blobs"], data["renditions"] = _blobs(session, data)
    return data


def _unit_of(criteria: list, criterion_id: int, unit_code: dict[int, str]) -> str:
    return next(unit_code[c.unit_id] for c, _ in criteria if c.id == criterion_id)


def _version_links(session: Session, version_ids: list[uuid.UUID], code_of: dict[int, str]) -> dict[uuid.UUID, dict]:
    """Load every version's criteria mapping, range items, attachments and signatures in four queries."""
    links: dict[uuid.UUID, dict] = {v: {"criteria": [], "range_items": [], "attachments": [], "signatures": []}
                                    for v in version_ids}
    if not version_ids:
        return links
    for row in session.exec(select(EvidenceCriterion).where(col(EvidenceCriterion.version_id).in_(version_ids))):
        links[row.version_id]["criteria"].append({"code": code_of[row.criterion_id], "note": row.note})
    for vid, key in session.exec(select(EvidenceRangeItem.version_id, RangeItem.key).join(
            RangeItem, RangeItem.id == EvidenceRangeItem.range_item_id).where(
            col(EvidenceRangeItem.version_id).in_(version_ids))):
        links[vid]["range_items"].append(key)
    for row in session.exec(select(Attachment).where(col(Attachment.version_id).in_(version_ids))
                            .order_by(Attachment.position)):
        links[row.version_id]["attachments"].append(_row(row, "version_id"))
    for row in session.exec(select(Signature).where(col(Signature.version_id).in_(version_ids))
                            .order_by(Signature.signed_at)):
        links[row.version_id]["signatures"].append(_row(row, "version_id"))
    for value in links.values():
        value["criteria"].sort(key=lambda c: c["code"])
        value["range_items"].sort()
    return links


def _decision_evidence(session: Session, decision_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    found: dict[uuid.UUID, list[str]] = {}
    if decision_ids:
        for did, eid in session.exec(select(DecisionEvidence.decision_id, DecisionEvidence.evidence_id).where(
                col(DecisionEvidence.decision_id).in_(decision_ids))):
            found.setdefault(did, []).append(str(eid))
    return found


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return _row(entry, "id") | {"at": _utc(entry.at)}


def _people(session: Session, data: dict) -> tuple[list[dict], dict[str, list[dict]]]:
    """Return everyone the records name, with the credentials the handbook rules read about them."""
    ids = {data["candidate"]["user_id"]}
    for e in data["evidence"]:
        ids.add(e["created_by_id"])
        for v in e["versions"]:
            ids.add(v["author_id"])
            ids.update(s["signer_id"] for s in v["signatures"] if s["signer_id"])
    ids.update(r["reviewer_id"] for r in data["reviews"])
    ids.update(d["assessor_id"] for d in data["decisions"])
    ids.update(r["iqa_id"] for r in data["iqa_reviews"])
    ids.update(s[k] for s in data["sign_offs"] for k in ("assessor_id", "reopened_by_id") if s[k])
    ids.update(r["marked_by_id"] for r in data["assignment_results"])
    keys = [uuid.UUID(i) for i in ids]
    credentials = {name: [_row(r) for r in session.exec(select(model).where(col(model.user_id).in_(keys)))]
                   for name, model in CREDENTIALS.items()}
    for rows in credentials.values():
        ids.update(r.get("verified_by_id") or r.get("approved_by_id") for r in rows)
    keys = [uuid.UUID(i) for i in ids if i]
    roles: dict[uuid.UUID, list[str]] = {}
    for grant in session.exec(select(RoleGrant).where(col(RoleGrant.user_id).in_(keys))):
        roles.setdefault(grant.user_id, []).append(grant.role)
    people = [{"id": str(u.id), "name": u.name, "email": u.email, "roles": sorted(roles.get(u.id, []))}
              for u in session.exec(select(User).where(col(User.id).in_(keys)).order_by(User.name))]
    return people, credentials


def _blobs(session: Session, data: dict) -> tuple[list[dict], list[dict]]:
    """Return the stored files the evidence and signatures name, with their smaller copies."""
    shas = {a["sha256"] for e in data["evidence"] for v in e["versions"] for a in v["attachments"]}
    shas |= {s["image_sha256"] for e in data["evidence"] for v in e["versions"] for s in v["signatures"]
             if s["image_sha256"]}
    renditions = [_row(r) for r in session.exec(select(BlobRendition).where(
        col(BlobRendition.original_sha256).in_(shas)))] if shas else []
    shas |= {r["sha256"] for r in renditions}
    blobs = [_row(b) for b in session.exec(select(Blob).where(col(Blob.sha256).in_(shas)).order_by(Blob.sha256))] \
        if shas else []
    return blobs, renditions


def export(session: Session, storage: Any, candidate: Candidate, out: BinaryIO, centre: str = "") -> dict:
    """Write a candidate's pack (manifest, media, PDF summary, format notes, checksums) to a binary stream."""
    from .pdf_summary import summary_pdf

    data = manifest(session, candidate, centre or "Portfolio tracker centre")
    body = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")
    sums: list[tuple[str, str]] = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        def put(name: str, content: bytes) -> None:
            z.writestr(name, content)
            sums.append((hashlib.sha256(content).hexdigest(), name))

        put(MANIFEST, body)
        put(MANIFEST_HASH, (hashlib.sha256(body).hexdigest() + "  " + MANIFEST + "\n").encode())
        for blob in data["blobs"]:
            name = f"media/{blob['sha256']}"
            digest = hashlib.sha256()
            with storage.open(blob["sha256"]) as source, z.open(name, "w") as target:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
                    target.write(chunk)
            sums.append((digest.hexdigest(), name))
        put(SUMMARY, summary_pdf(session, candidate, data))
        docs = resources.files("tracker") / "pack_docs"
        put("FORMAT.md", (docs / "FORMAT.md").read_bytes())
        put("schema.json", (docs / "schema.json").read_bytes())
        z.writestr(CHECKSUMS, "".join(f"{h}  {n}\n" for h, n in sums))
    return data


# --- Reading a pack safely -------------------------------------------------------------------------------------


class Pack:
    """A pack opened for checking: names are checked and sizes capped before anything is read."""

    def __init__(self, source: str | Path | BinaryIO, max_total: int = MAX_TOTAL):
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError):
            raise PackRefused("This is not a portfolio pack: the file is not a zip archive.") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_ENTRIES:
            raise PackRefused(f"Refused: the zip holds {len(infos)} files; a pack holds at most {MAX_ENTRIES}.")
        names = [i.filename for i in infos]
        for name in names:
            if not SAFE_NAME.match(name) or ".." in name:
                raise PackRefused(f"Refused: the zip holds a file named {name[:120]!r}, which is not a pack's "
                                  "(a pack holds only manifest.json, its checksums and media/<sha256> files).")
        if len(set(names)) != len(names):
            raise PackRefused("Refused: the zip names the same file twice.")
        total = sum(i.file_size for i in infos)
        if total > max_total:
            raise PackRefused(f"Refused: the zip would unpack to {total} bytes, more than the {max_total} allowed.")
        self.max_total, self.read_so_far = max_total, 0
        self.names = set(names)

    def read(self, name: str, limit: int | None = None) -> bytes:
        """Read one file whole, stopping at its declared size (a lying header cannot unpack more)."""
        info = self.zip.getinfo(name)
        cap = min(info.file_size, limit or info.file_size)
        if limit is not None and info.file_size > limit:
            raise PackRefused(f"Refused: {name} is {info.file_size} bytes, more than {limit} allowed.")
        with _damaged(name), self.zip.open(info) as stream:
            return self._counted(stream.read(cap + 1), name, cap)

    def sha256(self, name: str) -> str:
        """Hash one file, streaming it."""
        digest = hashlib.sha256()
        with _damaged(name), self.zip.open(name) as stream:
            while chunk := stream.read(1024 * 1024):
                self._counted(chunk, name, None)
                digest.update(chunk)
        return digest.hexdigest()

    def extract(self, name: str, target: Path) -> None:
        """Copy one file out to a path chosen by the caller (never by the zip)."""
        with _damaged(name), self.zip.open(name) as stream, open(target, "wb") as out:
            while chunk := stream.read(1024 * 1024):
                out.write(self._counted(chunk, name, None))

    def _counted(self, chunk: bytes, name: str, cap: int | None) -> bytes:
        if cap is not None and len(chunk) > cap:
            raise PackRefused(f"Refused: {name} unpacks to more than its declared size.")
        self.read_so_far += len(chunk)
        if self.read_so_far > self.max_total:
            raise PackRefused("Refused: the zip unpacks to more than it declares (a zip bomb).")
        return chunk

    def manifest(self) -> tuple[dict, bytes]:
        """Return the manifest, or refuse clearly when it is missing or not a pack's."""
        if MANIFEST not in self.names:
            raise PackRefused("This is not a portfolio pack: it has no manifest.json.")
        body = self.read(MANIFEST, MAX_MANIFEST)
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PackRefused(f"This is not a portfolio pack: manifest.json is not JSON ({exc}).") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PackRefused("This is not a portfolio pack: manifest.json does not say it is one.")
        if data.get("format_version") != FORMAT_VERSION:
            raise PackRefused(f"This pack is format version {data.get('format_version')!r}; this tracker reads "
                              f"version {FORMAT_VERSION}.")
        missing = [k for k in ("candidate", "qualification", "people", "credentials", "evidence", "reviews",
                               "decisions", "iqa_reviews", "sign_offs", "assignment_results", "audit", "blobs",
                               "renditions") if k not in data]
        if missing:
            raise PackRefused(f"This pack's manifest is incomplete: it has no {', '.join(missing)}.")
        return data, body


@contextmanager
def _damaged(name: str) -> Iterator[None]:
    """Turn a damaged or lying zip member into a clear refusal."""
    try:
        yield
    # zipfile raises NotImplementedError for an unsupported compression method and RuntimeError for an
    # encrypted member: both are a sender's zip we cannot read, answered like any other damaged member.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise PackRefused(f"Refused: {name} in the zip is damaged or not what its header says ({exc}).") from None


# --- Verify -------------------------------------------------------------------------------------------------


@dataclass
class Report:
    """What checking a pack found: every problem, precisely, and a summary of what checks out."""

    manifest: dict
    manifest_sha256: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Say whether nothing in the pack has been changed."""
        return not self.problems

    def summary(self) -> str:
        """Return one line about what the pack holds."""
        m = self.manifest
        versions = sum(len(e["versions"]) for e in m["evidence"])
        signatures = sum(len(v["signatures"]) for e in m["evidence"] for v in e["versions"])
        return (f"{m['candidate']['name']} ({m['candidate']['registration_number']}): {len(m['evidence'])} pieces of "
                f"evidence in {versions} versions, {signatures} signatures, {len(m['decisions'])} decisions, "
                f"{len(m['iqa_reviews'])} IQA reviews, {len(m['blobs'])} media files, {len(m['audit'])} audit "
                f"entries.")


def verify(source: str | Path | BinaryIO, max_total: int = MAX_TOTAL) -> Report:
    """Check every file, content hash, signature, decision and audit link in a pack; name whatever was changed."""
    pack = Pack(source, max_total)
    data, body = pack.manifest()
    report = Report(data, hashlib.sha256(body).hexdigest())
    try:
        _check_files(pack, body, report)
        _check_text(data, "manifest", report)
        _check_content(data, report)
        _check_decisions(data, report)
        _check_iqa_reviews(data, report)
        _check_audit(data["audit"], report)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-edited manifest of the wrong shape
        report.problems.append(f"manifest.json: a record is malformed ({type(exc).__name__}: {exc}).")
    return report


def _check_text(value: Any, where: str, report: Report) -> None:
    """Name every text in the manifest holding a character no stored text may hold (NUL, a control character)."""
    if isinstance(value, str):
        if bad := CONTROL.search(value):
            report.problems.append(f"{where}: holds a character that cannot be stored (U+{ord(bad.group()):04X}).")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} (a name)", report)
            _check_text(item, f"{where}.{key}", report)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _check_text(item, f"{where}[{n}]", report)


def _check_files(pack: Pack, body: bytes, report: Report) -> None:
    """Check the checksum list, every media file's own name, and the manifest's recorded hash."""
    problems = report.problems
    listed: dict[str, str] = {}
    if CHECKSUMS not in pack.names:
        problems.append(f"{CHECKSUMS}: missing, so the files cannot be checked against it.")
    else:
        for line in pack.read(CHECKSUMS, MAX_MANIFEST).decode("utf-8", "replace").splitlines():
            digest, _, name = line.partition("  ")
            listed[name] = digest
    for name in sorted(pack.names - {CHECKSUMS}):
        actual = hashlib.sha256(body).hexdigest() if name == MANIFEST else pack.sha256(name)
        if name.startswith("media/") and actual != name[6:]:
            problems.append(f"{name[:14]}… : content does not match its sha256 ({name}).")
        elif name in listed and listed[name] != actual:
            problems.append(f"{name}: content does not match its checksum in {CHECKSUMS}.")
        elif listed and name not in listed:
            problems.append(f"{name}: not in the checksum list ({CHECKSUMS}); it was added.")
    for name in sorted(set(listed) - pack.names):
        problems.append(f"{name}: listed in {CHECKSUMS} but missing from the pack.")
    if MANIFEST_HASH in pack.names:
        recorded = pack.read(MANIFEST_HASH, 1024).decode("ascii", "replace").split(" ")[0].strip()
        if recorded != hashlib.sha256(body).hexdigest():
            problems.append(f"{MANIFEST}: does not match its own recorded hash in {MANIFEST_HASH}; it was changed.")
    else:
        problems.append(f"{MANIFEST_HASH}: missing.")
    for blob in report.manifest["blobs"]:
        if f"media/{blob['sha256']}" not in pack.names:
            problems.append(f"media/{blob['sha256'][:12]}… : named in the manifest but missing from the pack.")


def recompute(candidate_id: str, unit: str, method: str, version: dict) -> str:
    """Recompute a version's content hash exactly as the evidence service computes it."""
    content = ContentIn.model_construct(
        **{name: version[name] for name in CONTENT_FIELDS},
        criteria=[CriterionLink.model_construct(code=c["code"], note=c["note"]) for c in version["criteria"]],
        range_items=list(version["range_items"]),
        attachments=[AttachmentIn.model_construct(sha256=a["sha256"], filename=a["filename"])
                     for a in version["attachments"]])
    return content_hash(version_content(SimpleNamespace(id=candidate_id), SimpleNamespace(code=unit), method,
                                        content))


def _check_content(data: dict, report: Report) -> None:
    """Check every version's content hash and every signature's binding to the content it signs."""
    candidate_id = data["candidate"]["id"]
    reviewed = Counter(r["version_id"] for r in data["reviews"])
    for e in data["evidence"]:
        if e["candidate_id"] != candidate_id:
            report.problems.append(f"evidence {e['id']}: belongs to another candidate.")
        for v in e["versions"]:
            label = f"evidence '{v['title']}' version {v['number']}"
            if reviewed[v["id"]] > 1:
                report.problems.append(f"{label}: decided {reviewed[v['id']]} times; a version is decided once.")
            actual = recompute(candidate_id, e["unit"], e["method"], v)
            if actual != v["content_hash"]:
                report.problems.append(f"{label}: content does not match its content_hash (it was changed).")
            for s in v["signatures"]:
                if s["content_hash"] != actual:
                    report.problems.append(f"{label}: {s['kind']} signature by {s['signer_name']} signs content "
                                           f"{s['content_hash'][:12]}…, not this content ({actual[:12]}…).")


def _logged(data: dict, *actions: str) -> dict[str, dict]:
    """Return the pack's audit entries of these actions by the id of the record each concerns."""
    return {a["entity_id"]: a for a in data["audit"] if a["action"] in actions}


def _check_bound(report: Report, label: str, entry: dict | None, facts: dict[str, Any]) -> None:
    """Check a record's facts against the audit entry that recorded them, naming each that differs."""
    if entry is None:
        report.problems.append(f"{label}: no audit entry records it.")
        return
    recorded = entry["details"]
    for key, value in facts.items():
        if recorded.get(key) != value:
            report.problems.append(f"{label}: {key} {value!r} does not match the audit log "
                                   f"({recorded.get(key)!r}, entry {entry['seq']}).")


def _check_decisions(data: dict, report: Report) -> None:
    """Check each decision rests on evidence in the pack and matches the audit entry that recorded it."""
    evidence_ids = {e["id"] for e in data["evidence"]}
    # A decision recorded here, or one this centre imported (which records the same facts when it arrives).
    logged = _logged(data, "decision.recorded", "decision.imported")
    for d in data["decisions"]:
        label = f"decision for {d['unit']}/{d['criterion']}"
        for eid in d["evidence"]:
            if eid not in evidence_ids:
                report.problems.append(f"{label}: rests on evidence {eid} that is not in the pack.")
        _check_bound(report, label, logged.get(d["id"]), {
            "outcome": d["outcome"], "criterion": d["criterion"], "evidence": sorted(d["evidence"]), "note": d["note"]})


def _check_iqa_reviews(data: dict, report: Report) -> None:
    """Check each IQA review concerns one decision or sign-off in the pack and matches the audit entry recording it."""
    decisions = {d["id"]: d for d in data["decisions"]}
    sign_offs = {s["id"]: s for s in data["sign_offs"]}
    logged = _logged(data, "iqa.reviewed", "iqa.review_imported")
    for r in data["iqa_reviews"]:
        decision_id, signoff_id = r.get("decision_id"), r.get("signoff_id")
        if bool(decision_id) == bool(signoff_id):
            report.problems.append(f"IQA review {r['id']}: concerns neither one decision nor one unit sign-off.")
            continue
        if decision_id:
            d, facts, what = decisions.get(decision_id), {"decision": decision_id}, "a decision"
            label = d and f"IQA review of the decision for {d['unit']}/{d['criterion']}"
        else:
            s, facts, what = sign_offs.get(signoff_id), {"signoff": signoff_id}, "a unit sign-off"
            label = s and f"IQA review of the Unit {s['unit']} sign-off"
        if not label:
            report.problems.append(f"IQA review {r['id']}: reviews {what} that is not in the pack.")
            continue
        _check_bound(report, label, logged.get(r["id"]), facts | {
            "verdict": r["verdict"], "reasons": r["reasons"], "practice_feedback": r["practice_feedback"]})


def _check_audit(entries: list[dict], report: Report) -> None:
    """Check each audit entry's own hash, and the links between entries that were consecutive in the centre's chain."""
    previous = None
    for raw in entries:
        entry = SimpleNamespace(**(raw | {"at": datetime.fromisoformat(raw["at"])}))
        if entry_hash(entry) != raw["hash"]:
            report.problems.append(f"audit entry {raw['seq']} has been changed ({raw['action']}).")
        if previous is not None:
            if raw["seq"] <= previous["seq"]:
                report.problems.append(f"audit entry {raw['seq']}: out of order after entry {previous['seq']}.")
            elif raw["seq"] == previous["seq"] + 1 and raw["prev_hash"] != previous["hash"]:
                report.problems.append(f"audit entry {raw['seq']} does not follow entry {previous['seq']}.")
        previous = raw


# --- Import -----------------------------------------------------------------------------------------------------


def import_pack(session: Session, storage: Any, actor: Actor, source: str | Path | BinaryIO) -> Candidate:
    """Verify a pack, then recreate its candidate here with the same ids and hashes (refused if already here)."""
    report = verify(source)
    if not report.ok:
        raise PackRefused("The pack does not verify, so nothing was imported: " + " ".join(report.problems[:5]))
    data = report.manifest
    candidate_id = uuid.UUID(data["candidate"]["id"])
    if session.get(Candidate, candidate_id) is not None or session.exec(select(ImportedPack.id).where(
            ImportedPack.manifest_sha256 == report.manifest_sha256)).first():
        raise PackRefused(f"{data['candidate']['name']} is already in this tracker; the pack was imported before "
                          "(nothing was changed).")
    if session.exec(select(Candidate.id).where(
            Candidate.registration_number == data["candidate"]["registration_number"])).first():
        raise PackRefused(f"Registration number {data['candidate']['registration_number']} already belongs to another "
                          "candidate here (nothing was imported).")
    spec = _Spec(session, data)
    created = _import_people(session, data, actor)
    _add_missing(session, [m.model_validate(r) for name, m in CREDENTIALS.items() for r in data["credentials"][name]])
    session.add(_model(Candidate, data["candidate"], qualification_id=spec.qualification.id))
    session.flush()
    _import_media(session, storage, Pack(source), data)
    _import_evidence(session, data, spec)
    _import_assessment(session, data, spec)
    session.add(ImportedPack(candidate_id=candidate_id, manifest_sha256=report.manifest_sha256,
                             sending_centre=str(data.get("sending_centre", ""))[:300], manifest=data,
                             people=[str(p) for p in created], imported_by_id=actor.id))
    candidate = session.get(Candidate, candidate_id)
    record(session, actor, "pack.imported", candidate, candidate=str(candidate_id),
           sending_centre=data.get("sending_centre"), manifest_sha256=report.manifest_sha256,
           evidence=len(data["evidence"]), decisions=len(data["decisions"]), audit_entries=len(data["audit"]),
           people_created=len(created))
    for e in data["evidence"]:
        record(session, actor, "evidence.imported", session.get(Evidence, uuid.UUID(e["id"])),
               candidate=str(candidate_id), versions=[[v["number"], v["content_hash"]] for v in e["versions"]])
    for d in data["decisions"]:
        record(session, actor, "decision.imported", session.get(CriterionDecision, uuid.UUID(d["id"])),
               candidate=str(candidate_id), criterion=d["criterion"], outcome=d["outcome"], current=d["current"],
               evidence=sorted(d["evidence"]), note=d["note"])
    for r in data["iqa_reviews"]:
        subject = {"decision": r["decision_id"]} if r.get("decision_id") else {"signoff": r["signoff_id"]}
        record(session, actor, "iqa.review_imported", session.get(IqaReview, uuid.UUID(r["id"])),
               candidate=str(candidate_id), **subject, verdict=r["verdict"], reasons=r["reasons"],
               practice_feedback=r["practice_feedback"])
    session.flush()
    return candidate


def _model(model: type[SQLModel], row: dict, **changes: Any) -> SQLModel:
    """Build a row from pack data, dropping what the pack adds for readers."""
    names = set(model.model_fields)
    return model.model_validate({k: v for k, v in row.items() if k in names} | changes)


class _Spec:
    """The receiving centre's qualification, units, criteria and range items, matched to the pack by code."""

    def __init__(self, session: Session, data: dict):
        code = data["candidate"]["qualification"]
        self.qualification = session.exec(select(Qualification).where(Qualification.code == code)).first()
        if self.qualification is None:
            raise PackRefused(f"This tracker has no qualification {code}; load its spec pack first.")
        units = session.exec(select(Unit).join(QualificationUnit, QualificationUnit.unit_id == Unit.id).where(
            QualificationUnit.qualification_id == self.qualification.id)).all()
        self.unit = {u.code: u.id for u in units}
        self.criterion = {(u, c): i for i, u, c in session.exec(select(Criterion.id, Unit.code, Criterion.code).join(
            Unit, Unit.id == Criterion.unit_id).where(col(Unit.id).in_(list(self.unit.values()))))}
        self.range_item = {(cid, key): i for i, cid, key in session.exec(select(
            RangeItem.id, RangeItem.criterion_id, RangeItem.key).where(
            col(RangeItem.criterion_id).in_(list(self.criterion.values()))))} if self.criterion else {}

    def unit_id(self, code: str) -> int:
        """Return the unit's id here, or refuse."""
        if code not in self.unit:
            raise PackRefused(f"This tracker's {self.qualification.code} has no unit {code}.")
        return self.unit[code]

    def criterion_id(self, unit: str, code: str) -> int:
        """Return the criterion's id here, or refuse."""
        if (unit, code) not in self.criterion:
            raise PackRefused(f"This tracker's unit {unit} has no criterion {code}.")
        return self.criterion[(unit, code)]


def _import_people(session: Session, data: dict, actor: Actor) -> list[uuid.UUID]:
    """Create the sending centre's people who are not here yet, without passwords, unable to sign in."""
    created = []
    for person in data["people"]:
        pid = uuid.UUID(person["id"])
        if session.get(User, pid) is not None:
            continue
        if session.exec(select(User.id).where(User.email == person["email"])).first():
            raise PackRefused(f"{person['email']} already has a different account here; merge or rename it "
                              "before importing (nothing was imported).")
        session.add(User(id=pid, email=person["email"], name=person["name"], password_hash=None, active=False))
        session.flush()
        for role in sorted(set(person["roles"]) & IMPORTED_ROLES):
            session.add(RoleGrant(user_id=pid, role=role, granted_by_id=actor.id))
        created.append(pid)
    session.flush()
    return created


def _add_missing(session: Session, rows: Iterable[SQLModel]) -> None:
    """Add rows whose primary key is not here yet."""
    for row in rows:
        key = row.sha256 if isinstance(row, Blob) else row.id
        if session.get(type(row), key) is None:
            session.add(row)
    session.flush()


def _import_media(session: Session, storage: Any, pack: Pack, data: dict) -> None:
    """Store each media file under its sha256, and its row."""
    with tempfile.TemporaryDirectory() as tmp:
        for blob in data["blobs"]:
            if not storage.exists(blob["sha256"]):
                # A fresh file each time: local storage may hard-link it, so it must never be rewritten.
                target = Path(tmp) / blob["sha256"]
                pack.extract(f"media/{blob['sha256']}", target)
                storage.put_file(target, blob["sha256"])
                target.unlink()
    _add_missing(session, [_model(Blob, b) for b in data["blobs"]])
    for r in data["renditions"]:
        if session.get(BlobRendition, (r["original_sha256"], r["size"])) is None:
            session.add(_model(BlobRendition, r))
    session.flush()


def _import_evidence(session: Session, data: dict, spec: _Spec) -> None:
    """Recreate evidence, versions in order, their mapping, attachments and signatures, with the same ids."""
    for e in data["evidence"]:
        session.add(_model(Evidence, e, unit_id=spec.unit_id(e["unit"])))
    session.flush()
    for e in data["evidence"]:
        for v in e["versions"]:
            vid = uuid.UUID(v["id"])
            session.add(_model(EvidenceVersion, v))
            session.flush()
            mapped = [spec.criterion_id(e["unit"], c["code"]) for c in v["criteria"]]
            for cid, c in zip(mapped, v["criteria"], strict=True):
                session.add(EvidenceCriterion(version_id=vid, criterion_id=cid, note=c["note"]))
            for key in v["range_items"]:  # a key names an item of one of the mapped criteria, as when captured
                item = next((spec.range_item[(cid, key)] for cid in mapped if (cid, key) in spec.range_item), None)
                if item is None:
                    raise PackRefused(f"This tracker has no range item {key} for the criteria it is mapped to.")
                session.add(EvidenceRangeItem(version_id=vid, range_item_id=item))
            for a in v["attachments"]:
                session.add(_model(Attachment, a, version_id=vid))
            for s in v["signatures"]:
                session.add(_model(Signature, s, version_id=vid))
            session.flush()
    session.add_all([_model(EvidenceReview, r) for r in data["reviews"]])
    session.flush()


def _import_assessment(session: Session, data: dict, spec: _Spec) -> None:
    """Recreate decisions (with the evidence each rests on), IQA reviews, sign-offs and assignment results."""
    for d in data["decisions"]:
        session.add(_model(CriterionDecision, d, criterion_id=spec.criterion_id(d["unit"], d["criterion"])))
    session.flush()
    session.add_all([DecisionEvidence(decision_id=uuid.UUID(d["id"]), evidence_id=uuid.UUID(e)) for d in data["decisions"]
                     for e in d["evidence"]])
    session.add_all([_model(UnitSignOff, s, unit_id=spec.unit_id(s["unit"])) for s in data["sign_offs"]])
    session.add_all([_model(AssignmentResult, r, unit_id=spec.unit_id(r["unit"]))
                     for r in data["assignment_results"]])
    session.flush()  # the decisions and sign-offs first: an IQA review points at one of them
    session.add_all([_model(IqaReview, r) for r in data["iqa_reviews"]])
    session.flush()


def find(session: Session, key: str) -> Candidate:
    """Return a candidate by id, email address or registration number, or refuse."""
    from . import people

    try:
        found = session.get(Candidate, uuid.UUID(key.strip()))
    except ValueError:
        found = None
    return found or people.find_candidate(session, key)


def to_bytes(session: Session, storage: Any, candidate: Candidate, centre: str = "") -> bytes:
    """Return a candidate's pack as bytes (for a download)."""
    out = io.BytesIO()
    export(session, storage, candidate, out, centre)
    return out.getvalue()
