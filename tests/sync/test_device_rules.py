"""Test 14 from the device: a rule broken by a change on the centre while the device was offline is refused on
sync with the same code the web form gets for the same input, and the assessor sees it on the device."""
import pytest
from sqlmodel import Session, select

from support.factories import TODAY
from tracker.audit import Actor
from tracker.errors import Refusal
from tracker.models import AssessorQualification, CandidateAssignment, OutboxItem, User
from tracker.services import evidence as service
from tracker.services import people


def withdraw_qualification(session, factory, field):
    row = session.exec(select(AssessorQualification).where(
        AssessorQualification.user_id == field.assessor.id)).one()
    people.withdraw(session, factory.as_admin, "assessor_qualification", row.id, TODAY - timedelta_days(30),
                    "Certificate could not be verified")


def end_assignment(session, factory, field):
    row = session.exec(select(CandidateAssignment).where(CandidateAssignment.user_id == field.assessor.id)).one()
    people.end_assignment(session, factory.as_admin, field.candidate, row.id)


def timedelta_days(n):
    from datetime import timedelta

    return timedelta(days=n)


@pytest.mark.parametrize("change", [withdraw_qualification, end_assignment])
def test_a_rule_broken_offline_is_refused_with_the_web_forms_code(tablet, field, factory, session, change):
    with Session(tablet.engine, expire_on_commit=False) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        service.capture(s, me, factory.evidence_data(field.candidate, "observation"))
        s.commit()
        payload = s.exec(select(OutboxItem)).one().payload
    change(session, factory, field)
    session.commit()
    # What the web form on the centre answers for the same input now.
    with pytest.raises(Refusal) as web:
        with session.begin_nested():
            service.capture(session, factory.actor(field.assessor), payload | {"id": None})
    session.rollback()
    report = tablet.client().sync()
    assert not report.ok and len(report.parked) == 1
    with Session(tablet.engine) as s:
        item = s.exec(select(OutboxItem)).one()
    assert (item.state, item.code, item.message) == ("parked", web.value.code, web.value.message)
