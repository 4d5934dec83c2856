"""The portfolio pack: a demo candidate's pack verifies, any tampering is named, hostile zips are refused, and
importing it into an empty centre reproduces the candidate's grid exactly, once."""
import hashlib
import io
import json
import os
import shutil
import zipfile
from dataclasses import asdict

import pytest
from click.testing import CliRunner
from sqlalchemy import func, text
from sqlmodel import Session, select

from support.factories import TODAY
from tracker import audit, demo
from tracker.audit import Actor
from tracker.cli import main
from tracker.db import make_engine
from tracker.models import (
    AuditEntry,
    Candidate,
    CriterionDecision,
    Evidence,
    EvidenceVersion,
    ImportedPack,
    IqaReview,
    Signature,
    User,
)
from tracker.services import assessment, pack, people
from tracker.services.evidence import unit_for
from tracker.storage import LocalStorage



@pytest.fixture
def storage(tmp_path):
    """The sending centre's file store."""
    return LocalStorage(tmp_path / "media")


@pytest.fixture
def centre(backend, session, storage):
    """The demo centre, loaded into this test's database."""
    return demo.load_demo(session, storage, TODAY)


def _export(session, storage, centre, stage: str = "f") -> bytes:
    candidate = people.get_candidate(session, centre.candidates[stage])
    return pack.to_bytes(session, storage, candidate, "Riverside Care Academy")


@pytest.fixture
def leah_pack(session, storage, centre, tmp_path):
    """Leah Campbell's pack (signed off, 20 decisions, a photo), written to a file."""
    path = tmp_path / "leah.zip"
    path.write_bytes(_export(session, storage, centre))
    return path


def _rewrite(source, target, change) -> None:
    """Copy a zip, passing each member's bytes through change(name, data)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, change(info.filename, old.read(info.filename)))


def _edit_manifest(source, target, edit) -> None:
    def change(name, data):
        if name != pack.MANIFEST:
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest, indent=2, sort_keys=True).encode()
    _rewrite(source, target, change)


# --- Export and verify --------------------------------------------------------------------------------------------


def test_demo_pack_verifies_and_holds_every_part(leah_pack, session, centre):
    """A clean pack verifies; it holds the manifest, every media file by sha256, the PDF, the format notes."""
    report = pack.verify(leah_pack)
    assert report.ok, report.problems
    assert "Leah Campbell" in report.summary() and "20 decisions" in report.summary()
    with zipfile.ZipFile(leah_pack) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("manifest.json"))
        assert {"manifest.json", "manifest.sha256", "summary.pdf", "FORMAT.md", "schema.json", "SHA256SUMS"} <= names
        assert z.read("summary.pdf").startswith(b"%PDF")
        media = {n for n in names if n.startswith("media/")}
        assert media == {f"media/{b['sha256']}" for b in manifest["blobs"]} and media
        for name in media:
            assert hashlib.sha256(z.read(name)).hexdigest() == name[6:]
        listed = {line.split("  ")[1] for line in z.read("SHA256SUMS").decode().splitlines()}
        assert listed == names - {"SHA256SUMS"}
        schema = json.loads(z.read("schema.json"))
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(manifest, schema)
    # Every audit entry concerning her is in the pack, in the centre chain's order, with its hashes.
    entries = session.exec(select(AuditEntry).where(AuditEntry.candidate_id == centre.candidates["f"])
                           .order_by(AuditEntry.seq)).all()
    assert [(a["seq"], a["hash"]) for a in manifest["audit"]] == [(e.seq, e.hash) for e in entries]
    signatures = [s for e in manifest["evidence"] for v in e["versions"] for s in v["signatures"]]
    assert signatures and all(len(s["content_hash"]) == 64 for s in signatures)


def test_one_changed_media_byte_is_named(leah_pack, tmp_path):
    """Changing one byte of a photo names the file whose content no longer matches its sha256."""
    target = tmp_path / "changed.zip"
    changed = []

    def flip(name, data):
        if name.startswith("media/") and not changed:
            changed.append(name)
            return bytes([data[0] ^ 1]) + data[1:]
        return data
    _rewrite(leah_pack, target, flip)
    report = pack.verify(target)
    assert not report.ok
    assert f"{changed[0][:14]}… : content does not match its sha256 ({changed[0]})." in report.problems


def test_one_changed_decision_is_named(leah_pack, tmp_path):
    """Turning one decision's outcome names the decision, and the manifest's own hash no longer matches."""
    target = tmp_path / "changed.zip"
    criterion = {}

    def edit(manifest):
        decision = manifest["decisions"][3]
        criterion["code"] = decision["criterion"]
        decision["outcome"] = "not_met" if decision["outcome"] == "met" else "met"
    _edit_manifest(leah_pack, target, edit)
    report = pack.verify(target)
    assert any(p.startswith(f"decision for 002/{criterion['code']}: outcome") for p in report.problems), report.problems
    assert any("manifest.json: does not match its own recorded hash" in p for p in report.problems)


def test_one_changed_audit_entry_is_named(leah_pack, tmp_path):
    """Rewriting one audit entry's details names that entry by its number."""
    target = tmp_path / "changed.zip"
    seq = {}

    def edit(manifest):
        entry = manifest["audit"][5]
        seq["n"] = entry["seq"]
        entry["details"]["note"] = "quietly rewritten"
    _edit_manifest(leah_pack, target, edit)
    report = pack.verify(target)
    assert f"audit entry {seq['n']} has been changed" in " ".join(report.problems)


def test_changed_evidence_breaks_its_hash_and_signatures(leah_pack, tmp_path):
    """Editing signed evidence text names the version and every signature that no longer binds to it."""
    target = tmp_path / "changed.zip"

    def edit(manifest):
        version = next(v for e in manifest["evidence"] for v in e["versions"] if v["signatures"])
        version["narrative"] += " And more."
    _edit_manifest(leah_pack, target, edit)
    problems = " ".join(pack.verify(target).problems)
    assert "content does not match its content_hash" in problems and "signature by" in problems


def test_a_decision_resting_on_missing_evidence_is_named(leah_pack, tmp_path):
    """A decision that points at evidence not in the pack is named."""
    target = tmp_path / "changed.zip"
    _edit_manifest(leah_pack, target, lambda m: m["evidence"].pop(0))
    assert "that is not in the pack" in " ".join(pack.verify(target).problems)


def test_a_sign_off_review_travels_bound_to_the_audit_log(leah_pack, tmp_path):
    """Leah's pack holds her IQA's review of her sign-off and verifies; verify-pack names a changed verdict, and a
    review whose sign-off is missing from the pack."""
    report = pack.verify(leah_pack)
    assert report.ok, report.problems
    signoff = report.manifest["sign_offs"][0]
    assert [(r["signoff_id"], r["decision_id"], r["verdict"]) for r in report.manifest["iqa_reviews"]
            if r["signoff_id"]] == [(signoff["id"], None, "agree")]
    target = tmp_path / "changed.zip"
    _edit_manifest(leah_pack, target, lambda m: next(r for r in m["iqa_reviews"] if r["signoff_id"]).update(
        verdict="disagree"))
    result = CliRunner().invoke(main, ["verify-pack", str(target)])
    assert result.exit_code == 1
    assert "IQA review of the Unit 002 sign-off: verdict 'disagree' does not match the audit log ('agree'" \
        in result.output
    _edit_manifest(leah_pack, target, lambda m: m["sign_offs"].clear())
    assert any(p.endswith("reviews a unit sign-off that is not in the pack.") for p in pack.verify(target).problems)


# --- Hostile files -----------------------------------------------------------------------------------------------


def _zip(tmp_path, members: dict[str, bytes], name="hostile.zip"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in members.items():
            z.writestr(member, data)
    return path


MANIFEST_OK = json.dumps({"format": pack.FORMAT, "format_version": 1}).encode()


@pytest.mark.parametrize("members, message", [
    ({"../../etc/cron.d/evil": b"x", "manifest.json": MANIFEST_OK}, "which is not a pack's"),
    ({"/abs/path": b"x"}, "which is not a pack's"),
    ({"media/..\\..\\x": b"x"}, "which is not a pack's"),
    ({"notes.txt": b"x"}, "no manifest.json"),
    ({"manifest.json": b"{not json"}, "manifest.json is not JSON"),
    ({"manifest.json": b"[1, 2]"}, "does not say it is one"),
    ({"manifest.json": json.dumps({"format": pack.FORMAT, "format_version": 99}).encode()}, "format version 99"),
    ({"manifest.json": MANIFEST_OK}, "manifest is incomplete"),
], ids=["traversal", "absolute", "backslash", "no-manifest", "not-json", "not-a-pack", "newer-format", "incomplete"])
def test_hostile_packs_are_refused_clearly(tmp_path, members, message):
    """Path tricks, a missing or malformed manifest are refused with a clear message, never a traceback."""
    path = _zip(tmp_path, members)
    with pytest.raises(pack.PackRefused, match=message):
        pack.verify(path)
    result = CliRunner().invoke(main, ["verify-pack", str(path)])
    assert result.exit_code == 1 and message.split()[0] in result.output and "Traceback" not in result.output


def test_not_a_zip_is_refused(tmp_path):
    """Any other file is refused as not a zip."""
    path = tmp_path / "photo.zip"
    path.write_bytes(b"\x89PNG not a zip at all")
    result = CliRunner().invoke(main, ["verify-pack", str(path)])
    assert result.exit_code == 1 and "not a zip archive" in result.output


def test_zip_bomb_is_refused_before_unpacking(tmp_path):
    """A small zip that would unpack past the cap is refused from its declared sizes."""
    path = _zip(tmp_path, {"manifest.json": MANIFEST_OK, "media/" + "0" * 64: bytes(64 * 1024 * 1024)})
    assert path.stat().st_size < 200_000
    with pytest.raises(pack.PackRefused, match="would unpack to"):
        pack.verify(path, max_total=16 * 1024 * 1024)


def test_absurd_entry_counts_are_refused(tmp_path, monkeypatch):
    """A zip with more entries than a pack can hold is refused."""
    monkeypatch.setattr(pack, "MAX_ENTRIES", 50)
    path = _zip(tmp_path, {f"f{i}": b"" for i in range(51)})
    with pytest.raises(pack.PackRefused, match="holds 51 files"):
        pack.verify(path)


def test_lying_sizes_cannot_unpack_more(tmp_path):
    """A member whose header understates its size stops at the declared size, never unpacking more."""
    path = _zip(tmp_path, {"manifest.json": b" " * 100_000 + MANIFEST_OK})
    data = bytearray(path.read_bytes())
    # Shrink the declared uncompressed size in the central directory (offset 24 of its record).
    at = data.rfind(b"PK\x01\x02")
    data[at + 24:at + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(pack.PackRefused):
        pack.verify(path)


# --- Import into another centre ----------------------------------------------------------------------------------


@pytest.fixture
def receiving(request, backend, tmp_path):
    """An empty second centre (fresh migrated database with the bundled packs) on the same backend."""
    if backend == "sqlite":
        path = tmp_path / "receiving.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    admin = request.getfixturevalue("postgres_template")
    name = f"tracker_receiving_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE tracker_template STRATEGY FILE_COPY"))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _grid(session, candidate_id):
    """The candidate's grid as the read model gives it: criteria, evidence rows, decisions, readiness."""
    candidate = session.get(Candidate, candidate_id)
    state = assessment.portfolio_state(session, candidate, unit_for(session, candidate, "002"))
    return (state.readiness.as_dict(), [asdict(r) for r in state.evidence], [asdict(d) for d in state.decisions],
            [(c.code, c.text) for c in state.criteria])


@pytest.mark.parametrize("stage", ["f", "c"], ids=["signed-off", "referred-work"])
def test_import_reproduces_the_grid_once(session, storage, centre, receiving, tmp_path, stage):
    """The pack imported into an empty centre gives the same grid, ids and hashes; a second import is refused."""
    path = tmp_path / "pack.zip"
    path.write_bytes(_export(session, storage, centre, stage))
    theirs = LocalStorage(tmp_path / "receiving-media")
    with Session(receiving, expire_on_commit=False) as other:
        candidate = pack.import_pack(other, theirs, Actor(None), path)
        other.commit()
        assert _grid(other, candidate.id) == _grid(session, centre.candidates[stage])
        versions = {(v.id, v.content_hash) for v in other.exec(select(EvidenceVersion))}
        assert versions == {(v.id, v.content_hash) for v in session.exec(select(EvidenceVersion).join(Evidence).where(
            Evidence.candidate_id == centre.candidates[stage]))}
        signatures = {(s.id, s.content_hash) for s in other.exec(select(Signature))}
        assert signatures and all(h in {c for _, c in versions} for _, h in signatures)
        for blob in pack.verify(path).manifest["blobs"]:
            with theirs.open(blob["sha256"]) as stored:
                assert hashlib.sha256(stored.read()).hexdigest() == blob["sha256"]
        # The sending centre's people arrive without passwords and cannot sign in.
        imported = other.exec(select(User)).all()
        assert imported and all(u.password_hash is None and not u.active for u in imported)
        # The receiving centre's own chain records the import and stays intact; the sender's entries are kept.
        assert audit.verify(other).intact
        assert other.exec(select(AuditEntry.action).where(AuditEntry.action == "pack.imported")).all() == [
            "pack.imported"]
        # IQA reviews arrive as they were, each audited here with the facts it records.
        sent = pack.verify(path).manifest["iqa_reviews"]
        restored = other.exec(select(IqaReview)).all()
        assert {(str(r.id), r.signoff_id and str(r.signoff_id), r.verdict, r.practice_feedback) for r in restored} \
            == {(r["id"], r["signoff_id"], r["verdict"], r["practice_feedback"]) for r in sent}
        assert [r.signoff_id is not None for r in restored] == ([True] if stage == "f" else [])
        assert len(other.exec(select(AuditEntry).where(AuditEntry.action == "iqa.review_imported")).all()) == len(sent)
        # The learner can move on again: the receiving centre's own pack of them verifies too.
        onward = pack.verify(io.BytesIO(pack.to_bytes(other, theirs, candidate, "Hillside College")))
        assert onward.ok, onward.problems
        kept = other.exec(select(ImportedPack)).one()
        assert kept.manifest["audit"] == pack.verify(path).manifest["audit"]
        before = other.exec(select(func.count()).select_from(CriterionDecision)).one()
        with pytest.raises(pack.PackRefused, match="already in this tracker"):
            pack.import_pack(other, theirs, Actor(None), path)
        other.rollback()
        assert other.exec(select(func.count()).select_from(CriterionDecision)).one() == before


def test_a_tampered_pack_is_never_imported(leah_pack, receiving, tmp_path):
    """A pack that does not verify is refused and nothing is written."""
    target = tmp_path / "changed.zip"
    _edit_manifest(leah_pack, target, lambda m: m["decisions"][0].update(note="edited"))
    with Session(receiving) as other:
        with pytest.raises(pack.PackRefused, match="does not verify"):
            pack.import_pack(other, LocalStorage(tmp_path / "m"), Actor(None), target)
        other.rollback()
        assert other.exec(select(func.count()).select_from(Candidate)).one() == 0


# --- Command line --------------------------------------------------------------------------------------------------


def test_cli_export_verify_import(tmp_path, monkeypatch):
    """`tracker export` writes a pack that `verify-pack` accepts; a changed copy fails with exit 1 naming the change;
    `import-pack` brings it into another instance once."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()
    sender, receiver = tmp_path / "sender", tmp_path / "receiver"
    assert runner.invoke(main, ["--instance", str(sender), "demo"]).exit_code == 0
    out = tmp_path / "leah.zip"
    result = runner.invoke(main, ["--instance", str(sender), "export", "leah.campbell@riverside.example",
                                  "--out", str(out)])
    assert result.exit_code == 0 and out.is_file(), result.output
    result = runner.invoke(main, ["verify-pack", str(out)])
    assert result.exit_code == 0 and "Pack intact: Leah Campbell" in result.output
    changed = tmp_path / "changed.zip"
    _edit_manifest(out, changed, lambda m: m["audit"][0]["details"].update(title="x"))
    result = runner.invoke(main, ["verify-pack", str(changed)])
    assert result.exit_code == 1 and f"audit entry {json.loads(zipfile.ZipFile(out).read('manifest.json'))['audit'][0]['seq']} has been changed" in result.output
    result = runner.invoke(main, ["--instance", str(receiver), "import-pack", str(out)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(main, ["--instance", str(receiver), "import-pack", str(out)])
    assert again.exit_code == 1 and "already in this tracker" in again.output
    missing = runner.invoke(main, ["--instance", str(sender), "export", "nobody@example.org", "--out",
                                   str(tmp_path / "x.zip")])
    assert missing.exit_code == 1 and "No such candidate" in missing.output and not (tmp_path / "x.zip").exists()


# --- Text as typed on any device ---------------------------------------------------------------------------------


def test_iqa_reasons_typed_with_decomposed_accents_verify_and_import(session, storage, centre, receiving, tmp_path,
                                                                     factory):
    """IQA reasons typed as "Cafe" + a combining accent are stored as the audit log records them (NFC), so the
    candidate's pack verifies and another centre imports it, reasons intact."""
    from tracker.models import Role

    candidate_id = centre.candidates["f"]
    decision = session.exec(select(CriterionDecision).where(CriterionDecision.candidate_id == candidate_id,
                                                            CriterionDecision.current.is_(True))).first()
    iqa = factory.user(Role.IQA, name="Ines Iqa")
    review = assessment.iqa_review(session, factory.actor(iqa), decision.id, "disagree",
                                   "The Cafe\u0301 visit does not show how she chose the menu.")
    session.commit()
    assert review.reasons == "The Café visit does not show how she chose the menu."
    path = tmp_path / "pack.zip"
    path.write_bytes(_export(session, storage, centre, "f"))
    report = pack.verify(path)
    assert report.ok, report.problems
    with Session(receiving, expire_on_commit=False) as other:
        pack.import_pack(other, LocalStorage(tmp_path / "receiving-media"), Actor(None), path)
        other.commit()
        assert other.get(IqaReview, review.id).reasons == review.reasons


def test_a_pack_holding_nul_is_refused_naming_where(leah_pack, receiving, tmp_path):
    """A pack whose manifest holds NUL (which no database here can store) does not verify, and says where."""
    target = tmp_path / "nul.zip"
    _edit_manifest(leah_pack, target, lambda m: m["candidate"].update(workplace="Meadow\x00View"))
    report = pack.verify(target)
    assert any("manifest.candidate.workplace: holds a character that cannot be stored (U+0000)" in p
               for p in report.problems)
    with Session(receiving) as other, pytest.raises(pack.PackRefused, match="U\\+0000"):
        pack.import_pack(other, LocalStorage(tmp_path / "m"), Actor(None), target)


def test_a_version_decided_twice_does_not_verify(leah_pack, tmp_path):
    """A pack in which one version carries two decisions (a race before decisions were held to one) is named."""
    target = tmp_path / "twice.zip"

    def twice(manifest: dict) -> None:
        first = manifest["reviews"][0]
        manifest["reviews"].append(first | {"id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"})

    _edit_manifest(leah_pack, target, twice)
    assert any("decided 2 times" in p for p in pack.verify(target).problems)
