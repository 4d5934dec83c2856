"""Record factories that go through the real services, so every record a test uses obeyed the rules."""
import hashlib
import itertools
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from tracker import clock
from tracker.audit import SYSTEM, Actor
from tracker.models import Blob, Candidate, Evidence, Role, SampleItem, User
from tracker.services import assessment, evidence, people, quality

_n = itertools.count(1)
# The moment every test starts at (the tests' clock is moved there, see conftest), taken from the real clock once
# per run, so the suite acts on the day it runs: a run under a shifted clock (faketime) tests the tracker on that day.
# The run's first process writes it to the environment; its workers and the processes tests start read it there.
NOW_VARIABLE = "TRACKER_TEST_NOW"
# In UTC whatever offset the moment was given with, as the tracker stores it: a test that builds "17:00" from NOW
# means 17:00 UTC in summer time too.
NOW = datetime.fromisoformat(os.environ.get(NOW_VARIABLE) or datetime.now(UTC).replace(microsecond=0).isoformat()
                             ).astimezone(UTC)
os.environ[NOW_VARIABLE] = NOW.isoformat()
TODAY = clock.day_of(NOW)  # the centre's date at that moment


class Factory:
    """Make people, candidates and evidence with sensible defaults and any field overridden."""

    def __init__(self, session: Session, today: date):
        self.session, self.today = session, today
        self._admin: User | None = None

    def actor(self, user: User | None, device_id=None) -> Actor:  # noqa: ANN001
        """Return an actor for a person, on the tests' fixed today."""
        return Actor(user, device_id=device_id, today=self.today)

    @property
    def admin(self) -> User:
        """The centre administrator."""
        if self._admin is None:
            self._admin = people.create_user(self.session, SYSTEM, {
                "email": "admin@centre.test", "name": "Ada Admin", "password": "correct horse battery",
                "roles": [Role.ADMINISTRATOR]})
        return self._admin

    def adopt_admin(self, user: User) -> None:
        """Act as an administrator already in the database (one a copied centre brought with it)."""
        self._admin = user

    @property
    def as_admin(self) -> Actor:
        """The administrator as actor."""
        return self.actor(self.admin)

    def user(self, *roles: Role | str, name: str | None = None, email: str | None = None) -> User:
        """Make an account with roles."""
        n = next(_n)
        user = people.create_user(self.session, self.as_admin, {
            "email": email or f"person{n}@centre.test", "name": name or f"Person {n}",
            "password": "correct horse battery", "roles": [r for r in roles if r != Role.CANDIDATE]})
        if Role.CANDIDATE in roles:  # a candidate's role without the registration, for tests of what it alone allows
            people.grant_role(self.session, self.as_admin, user, Role.CANDIDATE)
        return user

    def assessor(self, *, qualification: str | None = "A1", competence: str | None = "competent",
                 name: str | None = None, extra_roles: tuple[str, ...] = ()) -> User:
        """Make an assessor; by default eligible for Units 001 and 002."""
        user = self.user(Role.ASSESSOR, *extra_roles, name=name)
        since = self.today - timedelta(days=3 * 365)
        if qualification:
            people.add_assessor_qualification(self.session, self.as_admin, {
                "user_id": user.id, "qualification_code": qualification, "awarded_on": since, "verified_on": since})
        if competence:
            people.record_competence(self.session, self.as_admin, {
                "user_id": user.id, "level": competence, "area": "Adult social care",
                "evidence": "Registered manager of a domiciliary care service", "verified_on": since})
        return user

    def expert_witness(self, *, approved: bool = True, name: str | None = None) -> User:
        """Make an expert witness, approved with the three conditions unless told not to."""
        user = self.user(Role.EXPERT_WITNESS, name=name)
        if approved:
            people.approve_expert_witness(self.session, self.as_admin, {
                "user_id": user.id, "working_knowledge": "Trained in person-centred thinking tools",
                "occupational_competence": "Palliative care nurse, 12 years",
                "evaluating_role": "Clinical lead who appraises hospice staff practice",
                "approved_on": self.today - timedelta(days=400)})
        return user

    def candidate(self, *, assessors: tuple[User, ...] = (), iqas: tuple[User, ...] = (),
                  witnesses: tuple[User, ...] = (), expert_witnesses: tuple[User, ...] = (),
                  **overrides: Any) -> Candidate:
        """Register a candidate for 3085-02 and attach the people given."""
        n = next(_n)
        user = self.user(name=overrides.pop("name", f"Candidate {n}"))
        data = {"user_id": user.id, "qualification": "3085-02", "registration_number": f"CG{n:06d}",
                "date_of_birth": date(1990, 5, 17), "registration_date": self.today - timedelta(days=365),
                "workplace": "Meadow View Care Home", "work_setting": "long_term_care",
                "assessor_ids": [a.id for a in assessors], "iqa_ids": [i.id for i in iqas]} | overrides
        candidate = people.register_candidate(self.session, self.as_admin, data)
        for person, role in [(w, Role.WITNESS) for w in witnesses] + [(e, Role.EXPERT_WITNESS)
                                                                       for e in expert_witnesses]:
            people.assign(self.session, self.as_admin, candidate, person, role)
        return candidate

    def blob(self, data: bytes = b"%PDF-1.7 test", media_type: str = "application/pdf") -> Blob:
        """Store a Blob row for some bytes (the storage layer is tested on its own)."""
        sha = hashlib.sha256(data).hexdigest()
        blob = self.session.get(Blob, sha) or Blob(sha256=sha, size=len(data), media_type=media_type)
        self.session.add(blob)
        self.session.flush()
        return blob

    def evidence_data(self, candidate: Candidate, method: str, **overrides: Any) -> dict[str, Any]:
        """Return valid capture input for a method, with any field overridden."""
        data: dict[str, Any] = {
            "candidate_id": candidate.id, "unit": "002", "method": method,
            "title": f"{method.replace('_', ' ').capitalize()} {next(_n)}",
            "activity_date": self.today - timedelta(days=10), "setting": "long_term_care",
            "narrative": "Supported Mrs B to use a relationship circle to plan her week, keeping her in control.",
            "criteria": [{"code": "2.1", "note": "Used good days and bad days"}], "submit": True,
        }
        if method == "work_product":
            data["attachments"] = [{"sha256": self.blob().sha256, "filename": "one-page profile.pdf"}]
        if method == "witness_testimony":
            data |= {"witness_name": "Sam Patel", "witness_role": "Senior carer",
                     "witness_relationship": "Colleague on the same shift", "witness_contact": "01632 960123",
                     "signatures": [{"kind": "witness"}]}
        return data | overrides

    def capture(self, by: User, candidate: Candidate, method: str, **overrides: Any) -> Evidence:
        """Capture evidence through the service."""
        return evidence.capture(self.session, self.actor(by), self.evidence_data(candidate, method, **overrides))

    def accepted(self, assessor: User, candidate: Candidate, method: str = "observation", *,
                 by: User | None = None, **overrides: Any) -> Evidence:
        """Capture evidence and have the assessor accept it."""
        item = self.capture(by or assessor, candidate, method, **overrides)
        if method == "work_product" and (by is None or by.id == candidate.user_id):
            evidence.sign(self.session, self.actor(by or assessor), item.id, {"kind": "authenticity"})
        evidence.review(self.session, self.actor(assessor), item.id, "accepted", "")
        return item

    def sampled_decision(self, assessor: User, candidate: Candidate, iqa: User, days: int = 9) -> tuple:
        """Judge 1.1 met on an accepted observation and draw it into an IQA's interim sample; return the evidence,
        the strategy, the sample and its one item."""
        accepted = self.accepted(assessor, candidate, criteria=[{"code": "1.1", "note": "Seen"}])
        assessment.decide(self.session, self.actor(assessor), candidate.id, "002", "1.1", "met", [accepted.id])
        strategy = quality.create_strategy(self.session, self.actor(iqa), {
            "name": "Interim", "kind": "interim", "cycle_start": self.today - timedelta(days=days),
            "cycle_end": self.today + timedelta(days=days), "base_rate": 100})
        sample = quality.draw(self.session, self.actor(iqa), strategy.id, 1)
        item = self.session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)).one()
        return accepted, strategy, sample, item

    def all_met(self, assessor: User, candidate: Candidate) -> Evidence:
        """Give a candidate an accepted observation covering all 20 criteria, each judged met."""
        codes = [c.code for c in assessment.criteria_of(self.session, evidence.unit_for(self.session, candidate,
                                                                                         "002"))]
        item = self.accepted(assessor, candidate, "observation",
                             criteria=[{"code": c, "note": "Seen in practice"} for c in codes])
        for code in codes:
            assessment.decide(self.session, self.actor(assessor), candidate.id, "002", code, "met", [item.id])
        return item
