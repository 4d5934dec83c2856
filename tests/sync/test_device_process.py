"""Test 5: a device process SIGKILLed at random points of a push, restarted on the same file, loses nothing."""
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from device_support import Served, wsgi
from support.factories import TODAY
from support.processes import child_env
from tracker.audit import Actor
from tracker.models import Evidence, OutboxItem, SyncReceipt, User
from tracker.services import evidence as service

HERE = Path(__file__).parent


def run_device(url: str, server: str, batch: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "device_process.py"), url, server, str(batch)],
                            env=child_env(HERE.parent.parent, HERE),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkilled_pushes_end_with_every_record_once(tablet, field, factory, session, seed):
    rng = random.Random(seed)
    with Session(tablet.engine, expire_on_commit=False) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        ids = []
        for n in range(30):
            ids.append(service.capture(s, me, factory.evidence_data(field.candidate, "observation",
                                                                    title=f"Visit {n}")).id)
            s.commit()
    served = Served(wsgi(tablet.centre))
    url = str(tablet.engine.url)
    try:
        for _ in range(6):  # killed at random moments: before, during and after requests and commits
            process = run_device(url, served.url, batch=3)
            time.sleep(rng.uniform(0.2, 1.2))
            process.send_signal(signal.SIGKILL)
            process.communicate()
        process = run_device(url, served.url, batch=3)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    finally:
        served.close()
    assert session.exec(select(func.count()).select_from(Evidence).where(Evidence.id.in_(ids))).one() == 30
    assert session.exec(select(func.count()).select_from(SyncReceipt)).one() == 30
    with Session(tablet.engine) as s:
        assert s.exec(select(func.count()).select_from(OutboxItem).where(OutboxItem.state != "sent")).one() == 0
