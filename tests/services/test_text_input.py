"""Text, email addresses, dates and ids are checked in one place for every service, on SQLite and PostgreSQL:
NUL and other control characters refused naming the field (code invalid_text), text stored and hashed in NFC,
dates within a sensible range, and stored hashes of existing content unchanged."""
import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlmodel import func, select

from support.factories import TODAY
from tracker import demo
from tracker.errors import InvalidInput, InvalidText, Refusal
from tracker.hashing import content_hash
from tracker.models import AuditEntry, Evidence, EvidenceVersion, IqaReview, Role, User
from tracker.services import assessment, deletions, eqa, evidence, people, quality, validate
from tracker.services.evidence import ContentIn, version_content

NUL = "Mrs B\x00chose"


@pytest.fixture
def ctx(backend, session, factory):
    """An assessor, an IQA, a candidate with a submitted and an accepted observation, and a sampled decision."""
    a = factory.assessor(name="Ann Assessor")
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    c = factory.candidate(name="Cara Candidate", assessors=(a,), iqas=(iqa,))
    submitted = factory.capture(a, c, "observation")
    accepted, strategy, sample, item = factory.sampled_decision(a, c, iqa)
    session.commit()
    return SimpleNamespace(a=a, iqa=iqa, c=c, submitted=submitted, accepted=accepted, strategy=strategy,
                           sample=sample, item=item)


def _capture(field: str):  # noqa: ANN202
    """Capture evidence with one field (a dotted path into the input) set to the value."""
    def call(session, factory, ctx, value):  # noqa: ANN001, ANN202
        data = factory.evidence_data(ctx.c, "witness_testimony" if field.startswith("witness") else "observation")
        data |= {"setting_detail": "Lounge", "location": "Office"}
        target, *path = field.split(".")
        if path:  # criteria.0.note, range_items.0, signatures.0.signer_name
            data[target] = {"criteria": [{"code": "2.1", "note": ""}], "range_items": [""],
                            "signatures": [{"kind": "observer", "signer_name": ""}]}[target]
            if path[-1].isdigit():
                data[target][int(path[-1])] = value
            else:
                data[target][int(path[0])][path[1]] = value
        else:
            data[target] = value
        return evidence.capture(session, factory.actor(ctx.a), data)
    return call


def _person(field: str):  # noqa: ANN202
    def call(session, factory, ctx, value):  # noqa: ANN001, ANN202
        data = {"email": "nell@centre.test", "name": "Nell New", "password": "correct horse battery"}
        return people.create_user(session, factory.as_admin, data | {field: value})
    return call


def _registration(field: str):  # noqa: ANN202
    def call(session, factory, ctx, value):  # noqa: ANN001, ANN202
        person = factory.user()
        data = {"user_id": person.id, "qualification": "3085-02", "registration_number": "CG123456",
                "date_of_birth": date(1990, 5, 17), "registration_date": TODAY - timedelta(days=30),
                "workplace": "Meadow View", "work_setting": "long_term_care"}
        return people.register_candidate(session, factory.as_admin, data | {field: value})
    return call


def _competence(session, factory, ctx, value):  # noqa: ANN001, ANN202
    return people.record_competence(session, factory.as_admin, {
        "user_id": ctx.a.id, "level": "competent", "area": "Adult care", "evidence": value, "verified_on": TODAY})


def _grant(session, factory, ctx, value):  # noqa: ANN001, ANN202
    inspector = factory.user(Role.EQA)
    return eqa.grant(session, factory.as_admin, {"eqa_id": inspector.id, "candidate_ids": [ctx.c.id],
                                                 "starts_at": datetime.now(UTC), "reason": value,
                                                 "ends_at": datetime.now(UTC) + timedelta(days=1)})


def _device(session, factory, ctx, value):  # noqa: ANN001, ANN202
    from sync.centre.tokens import issue_token

    return issue_token(session, ctx.a, uuid.uuid4(), value, 1, "0012", timedelta(days=9))


# Every free-text input of every service: (what, field, call).
TEXT_INPUTS = [
    *[(f"capture {f}", f, _capture(f)) for f in (
        "title", "narrative", "setting_detail", "location", "unit", "method", "criteria.0.note", "criteria.0.code",
        "range_items.0", "signatures.0.signer_name")],
    *[(f"testimony {f}", f, _capture(f)) for f in ("witness_name", "witness_role", "witness_relationship",
                                                    "witness_contact")],
    ("review feedback", "feedback", lambda s, f, c, v: evidence.review(s, f.actor(c.a), c.submitted.id, "referred", v)),
    ("decision note", "note", lambda s, f, c, v: assessment.decide(s, f.actor(c.a), c.c.id, "002", "1.1", "met",
                                                                   [c.accepted.id], v)),
    ("decision criterion", "criterion", lambda s, f, c, v: assessment.decide(s, f.actor(c.a), c.c.id, "002", v,
                                                                             "met", [c.accepted.id])),
    ("IQA reasons", "reasons", lambda s, f, c, v: quality.review(s, f.actor(c.iqa), c.item.id, "disagree", v)),
    ("IQA practice feedback", "practice_feedback",
     lambda s, f, c, v: quality.review(s, f.actor(c.iqa), c.item.id, "agree", "", v)),
    ("IQA action", "action", lambda s, f, c, v: quality.review(s, f.actor(c.iqa), c.item.id, "agree", "", "", v,
                                                               TODAY + timedelta(days=7))),
    ("sample item reason", "reason", lambda s, f, c, v: quality.add_item(s, f.actor(c.iqa), c.sample.id, "x", v)),
    ("strategy name", "name", lambda s, f, c, v: quality.create_strategy(s, f.actor(c.iqa), {
        "name": v, "kind": "interim", "cycle_start": TODAY, "cycle_end": TODAY})),
    ("strategy new sites", "new_sites", lambda s, f, c, v: quality.create_strategy(s, f.actor(c.iqa), {
        "name": "Spring", "kind": "interim", "cycle_start": TODAY, "cycle_end": TODAY, "new_sites": v})),
    *[(f"new person {f}", f, _person(f)) for f in ("email", "name", "password")],
    *[(f"registration {f}", f, _registration(f)) for f in ("registration_number", "workplace", "qualification",
                                                           "work_setting")],
    ("competence evidence", "evidence", _competence),
    ("withdrawal reason", "reason", lambda s, f, c, v: people.withdraw(
        s, f.as_admin, "competence", people.credentials(s, [c.a.id])[c.a.id].competences[0].id, TODAY, v)),
    ("account closing reason", "reason", lambda s, f, c, v: people.deactivate(s, f.as_admin, c.iqa, v)),
    ("grant reason", "reason", _grant),
    ("device name", "name", _device),
    ("draft deletion reason", "reason", lambda s, f, c, v: deletions.delete_draft(
        s, f.as_admin, f.capture(c.a, c.c, "observation", submit=False).id, v)),
]


def _rows(session) -> int:
    session.flush()
    return session.exec(select(func.count()).select_from(AuditEntry)).one()


@pytest.mark.parametrize(("what", "field", "call"), TEXT_INPUTS, ids=[t[0] for t in TEXT_INPUTS])
def test_nul_in_any_text_is_refused_naming_the_field(session, factory, ctx, what, field, call):
    """NUL (which PostgreSQL cannot store at all) is refused with code invalid_text and the field's name, on both
    databases, and nothing is written."""
    before = _rows(session)
    with pytest.raises(Refusal) as caught:
        call(session, factory, ctx, NUL)
    refusal = caught.value
    assert isinstance(refusal, InvalidText) and refusal.code == "invalid_text", (refusal.code, refusal.message)
    assert refusal.field and refusal.field.split(".")[0] == field.split(".")[0]
    assert "U+0000" in refusal.message
    session.rollback()
    assert _rows(session) == before


@pytest.mark.parametrize("character", ["\x01", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\ud800"])
def test_every_control_character_and_lone_surrogate_is_refused(session, factory, ctx, character):
    """C0 and C1 control characters, DEL and unpaired surrogates are refused wherever text is stored."""
    with pytest.raises(InvalidText):
        factory.capture(ctx.a, ctx.c, "observation", narrative=f"Supported Mrs B {character} to plan.")


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("narrative", "Line one\r\nline two\tindented", True), ("title", "Title\twith a tab", False),
    ("title", "Title\nwith a break", False), ("criteria.0.note", "Two\nlines", True)])
def test_tabs_and_line_breaks_only_where_a_field_takes_several_lines(session, factory, ctx, field, value, allowed):
    """A narrative or a note keeps its lines (stored with "\\n" line ends); a title stays on one line."""
    if allowed:
        item = _capture(field)(session, factory, ctx, value)
        stored = evidence.current_version(session, item)
        text = stored.narrative if field == "narrative" else stored.criteria[0].note
        assert text == value.replace("\r\n", "\n")
    else:
        with pytest.raises(InvalidText, match="on one line"):
            _capture(field)(session, factory, ctx, value)


def test_text_is_stored_and_hashed_in_nfc(session, factory, ctx):
    """Decomposed text (a Mac's e + combining accent) is stored composed, and hashes as the composed text does."""
    item = factory.capture(ctx.a, ctx.c, "observation", title="Cafe\u0301 visit", narrative="Zoe\u0301 chose.",
                           criteria=[{"code": "2.1", "note": "Rene\u0301e helped"}])
    version = evidence.current_version(session, item)
    assert (version.title, version.narrative, version.criteria[0].note) == ("Café visit", "Zoé chose.", "Renée helped")
    composed = validate(ContentIn, {"title": "Café visit", "narrative": "Zoé chose.", "activity_date":
                                    version.activity_date, "criteria": [{"code": "2.1", "note": "Renée helped"}],
                                    "setting": "long_term_care"})
    candidate, unit = SimpleNamespace(id=ctx.c.id), SimpleNamespace(code="002")
    assert version.content_hash == content_hash(version_content(candidate, unit, "observation", composed))


# Hashes of the demo centre's 21 pieces of evidence, and of content with decomposed accents and Windows line ends,
# computed by the tracker before text was normalised on input: normalising must change no existing hash.
DEMO_HASHES = (21, "ad4390f8180d639dfe2d868679dff8cc06fd27d4fe90b321ccd137c9bd0cbaa3")
ODD_HASH = "21827ede3a14fe8f7121c32b611628a6d389c14d34f01e8c66d2d811964d2921"


def _demo_content(piece: demo.Piece, day: date) -> dict:
    data = {"title": piece.title, "activity_date": day - timedelta(days=piece.days_ago), "setting": piece.setting,
            "narrative": piece.narrative, "criteria": [{"code": c, "note": n} for c, n in piece.criteria.items()],
            "range_items": list(piece.range_items)}
    if piece.file:
        data["attachments"] = [{"sha256": hashlib.sha256(piece.file.encode()).hexdigest(), "filename": piece.file}]
    if piece.location:
        data |= {"seen_in_place": True, "location": piece.location}
    if piece.method == "witness_testimony":
        data |= {"witness_name": demo.STAFF[piece.by].name, "witness_role": demo.WITNESS_ROLE,
                 "witness_contact": demo.WITNESS_CONTACT, "witness_relationship": demo.WITNESS_RELATIONSHIP}
    return data


def test_hashes_of_existing_content_are_unchanged():
    """Every demo piece of evidence, and text with decomposed accents and CR LF line ends, hashes exactly as it did
    before text was normalised on input (canonical JSON already hashed NFC text)."""
    candidate, unit = SimpleNamespace(id=uuid.UUID("0190b6a4-0000-7000-8000-000000000001")), SimpleNamespace(code="002")
    day = date(2026, 1, 1)
    hashes = [content_hash(version_content(candidate, unit, piece.method, validate(ContentIn, _demo_content(piece,
                                                                                                            day))))
              for _, pieces in sorted(demo.PORTFOLIOS.items()) for piece in pieces]
    assert (len(hashes), hashlib.sha256("".join(hashes).encode()).hexdigest()) == DEMO_HASHES
    odd = {"title": "Cafe\u0301 visit", "activity_date": day, "narrative": "Line one\r\nline two\rthree \u00e9",
           "criteria": [{"code": "2.1", "note": "Zoe\u0301\r\nsaid"}]}
    assert content_hash(version_content(candidate, unit, "observation", validate(ContentIn, odd))) == ODD_HASH


def test_a_replayed_capture_of_decomposed_text_is_the_same_capture(session, factory, ctx):
    """A device resending a capture typed with decomposed accents gets the first answer, not a conflict."""
    data = factory.evidence_data(ctx.c, "observation", id=str(uuid.uuid4()), title="Cafe\u0301 visit")
    first = evidence.capture(session, factory.actor(ctx.a), data)
    again = evidence.capture(session, factory.actor(ctx.a), data | {"title": "Café visit"})
    assert again.id == first.id


# --- Email addresses, roles, lengths, dates and ids ----------------------------------------------------------------


@pytest.mark.parametrize("email", ["ann\x00@centre.test", "<script>@centre.test", "ann\u200b@centre.test",
                                   "ann\ufeff@centre.test", "ann\u00a0smith@centre.test", "ann\u2060@centre.test"])
def test_email_with_nul_markup_or_invisible_characters_is_refused(session, factory, ctx, email):
    """An address with NUL, markup or a zero-width character (one that looks exactly like someone's) is refused."""
    factory.user(email="ann@centre.test")
    with pytest.raises(InvalidText) as caught:
        people.create_user(session, factory.as_admin, {"email": email, "name": "Ann Again"})
    assert caught.value.field == "email" and "U+" in caught.value.message
    assert session.exec(select(func.count()).select_from(User).where(User.name == "Ann Again")).one() == 0


def test_unknown_or_unstorable_email_finds_no_one(session, factory, ctx):
    """Looking an address up with NUL in it (the unauthenticated sign-in form) finds no one, on both databases."""
    assert people.find_user(session, NUL) is None
    assert people.authenticate(session, "ann\x00@centre.test", "x\ud800") is None


def test_candidate_is_not_a_role_given_on_add_a_person(session, factory, ctx):
    """A person becomes a candidate by registration, never by ticking a role."""
    with pytest.raises(InvalidInput, match="registered") as caught:
        people.create_user(session, factory.as_admin, {"email": "nell@centre.test", "name": "Nell",
                                                       "roles": ["candidate"]})
    assert caught.value.field == "roles"


@pytest.mark.parametrize(("call", "field"), [
    (lambda s, f, c, v: evidence.review(s, f.actor(c.a), c.submitted.id, "referred", v), "feedback"),
    (lambda s, f, c, v: quality.review(s, f.actor(c.iqa), c.item.id, "disagree", v), "reasons"),
    (lambda s, f, c, v: assessment.decide(s, f.actor(c.a), c.c.id, "002", "1.1", "met", [c.accepted.id], v), "note"),
    (lambda s, f, c, v: quality.review(s, f.actor(c.iqa), c.item.id, "agree", "", "", v, TODAY), "action"),
])
def test_a_million_characters_of_feedback_or_reasons_is_refused(session, factory, ctx, call, field):
    """Feedback, IQA reasons, notes and actions have a maximum length (5,000), said in the refusal."""
    with pytest.raises(InvalidInput, match="at most 5,000 characters") as caught:
        call(session, factory, ctx, "x" * 1_000_000)
    assert caught.value.field == field
    session.rollback()
    assert session.exec(select(func.count()).select_from(IqaReview)).one() == 0


@pytest.mark.parametrize(("field", "value"), [("date_of_birth", date(1, 1, 1)), ("date_of_birth", date(1899, 12, 31)),
                                              ("registration_date", date(1, 1, 1))])
def test_registration_dates_before_1900_are_refused(session, factory, ctx, field, value):
    """A date of birth of 0001-01-01 (or any before 1900) is refused with the range."""
    with pytest.raises(InvalidInput, match="1 January 1900") as caught:
        _registration(field)(session, factory, ctx, value)
    assert caught.value.field == field


@pytest.mark.parametrize(("start", "end", "field", "phrase"), [
    (TODAY, date(9999, 12, 31), "cycle_end", "1 January 1900 to 31 December 2100"),
    (TODAY, TODAY + timedelta(days=3 * 366 + 1), "cycle_end", "at most three years"),
    (date(1, 1, 1), TODAY, "cycle_start", "1 January 1900"),
    (TODAY - timedelta(days=4000), TODAY, "cycle_start", "within ten years"),
])
def test_sampling_cycle_dates_have_a_sensible_range(session, factory, ctx, start, end, field, phrase):
    """A strategy ending 9999-12-31 (which broke every page of it) or lasting years is refused, naming the date."""
    with pytest.raises(InvalidInput, match=phrase) as caught:
        quality.create_strategy(session, factory.actor(ctx.iqa), {"name": "Forever", "kind": "interim",
                                                                   "cycle_start": start, "cycle_end": end})
    assert caught.value.field == field


def test_a_strategy_stored_before_the_check_still_shows(session, factory, ctx):
    """A strategy saved with the last day a date can hold, before dates were checked, can still be read."""
    ctx.strategy.cycle_end = date.max
    session.add(ctx.strategy)
    session.commit()
    assert quality.population(session, ctx.strategy).items
    assert quality.coverage(session, ctx.strategy).criteria


@pytest.mark.parametrize(("due", "phrase"), [(TODAY + timedelta(days=4 * 366), "within three years"),
                                             (date(9999, 12, 31), "31 December 2100")])
def test_an_action_due_in_the_far_future_is_refused(session, factory, ctx, due, phrase):
    """An IQA action is due within three years."""
    with pytest.raises(InvalidInput, match=phrase) as caught:
        quality.review(session, factory.actor(ctx.iqa), ctx.item.id, "agree", "", "", "Observe again", due)
    assert caught.value.field == "due_on"


@pytest.mark.parametrize("bad_id", ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"])
def test_the_all_zero_uuid_is_not_an_evidence_id(session, factory, ctx, bad_id):
    """Evidence ids are made where the evidence is captured: the all-zero (or all-one) id is refused."""
    with pytest.raises(InvalidInput) as caught:
        factory.capture(ctx.a, ctx.c, "observation", id=bad_id)
    assert caught.value.field == "id"
    assert session.get(Evidence, uuid.UUID(bad_id)) is None


def test_every_version_holds_nfc_text(session, factory, ctx):
    """Whatever form the text arrived in, every stored version's text is already NFC."""
    import unicodedata

    factory.capture(ctx.a, ctx.c, "observation", title="A\u0308rger", narrative="Cafe\u0301")
    for version in session.exec(select(EvidenceVersion)):
        assert all(unicodedata.is_normalized("NFC", getattr(version, f) or "") for f in ("title", "narrative"))
