"""A device's clock can be months wrong: it judges "in the future" by the centre's clock (G24)."""
from datetime import date, timedelta

import pytest
import time_machine
from sqlmodel import Session

from support.factories import TODAY
from sync.device.field import centre_days
from tracker import clock
from tracker.audit import Actor
from tracker.errors import Refusal
from tracker.models import SyncState, User
from tracker.services import evidence as service

SIX_MONTHS = timedelta(days=182)


def _offset(tablet, seconds: float | None) -> None:
    """Record the centre's clock as the device learned it: its own plus an offset."""
    with Session(tablet.engine) as s:
        state = s.get(SyncState, 1)
        state.clock_offset = seconds
        s.add(state)
        s.commit()


def test_before_the_first_sync_the_device_leaves_the_future_to_the_centre(tablet):
    """Without the centre's clock the device refuses no date as future."""
    _offset(tablet, None)
    assert centre_days(tablet.engine) == (clock.today(), date.max)


@pytest.mark.parametrize("skew", [-SIX_MONTHS, timedelta(days=91)])
def test_the_device_counts_days_by_the_centre_s_clock(tablet, skew):
    """A device whose own clock is months out still knows the centre's day, with a day's leeway."""
    _offset(tablet, -skew.total_seconds())  # the device's clock is off by skew; the centre's is right
    with time_machine.travel(clock.now() + skew, tick=False):
        today, latest = centre_days(tablet.engine)
    assert today == TODAY and latest == TODAY + timedelta(days=1)


def test_yesterday_s_visit_is_accepted_on_a_device_six_months_behind(tablet, field, factory):
    """The visit is recorded: the device's own day is not what decides."""
    _offset(tablet, SIX_MONTHS.total_seconds())
    with time_machine.travel(clock.now() - SIX_MONTHS, tick=False):
        today, latest = centre_days(tablet.engine)
        with Session(tablet.engine, expire_on_commit=False) as s:
            me = Actor(s.get(User, field.assessor.id), today=today, latest_activity=latest)
            stored = service.capture(s, me, factory.evidence_data(
                field.candidate, "observation", activity_date=str(TODAY - timedelta(days=1))))
            s.commit()
    assert stored.id is not None


def test_a_truly_future_date_is_refused_with_its_own_code(tablet, field, factory):
    """Two days after the centre's today is future_activity_date, never the prior-learning code."""
    _offset(tablet, 0)
    today, latest = centre_days(tablet.engine)
    with Session(tablet.engine) as s:
        me = Actor(s.get(User, field.assessor.id), today=today, latest_activity=latest)
        with pytest.raises(Refusal) as refused:
            service.capture(s, me, factory.evidence_data(field.candidate, "observation",
                                                         activity_date=str(TODAY + timedelta(days=2))))
    assert refused.value.code == "future_activity_date"
