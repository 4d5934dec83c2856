"""Start the tracker and the tests' helper scripts as their own processes, on the tests' clock."""
import os
from datetime import UTC, datetime
from pathlib import Path

SITE = Path(__file__).resolve().parent / "site"  # sitecustomize: the tests' clock in every child process


def child_env(*paths: str | Path, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """Return an environment for a child process: the tests' clock as it stands now, and paths to import from."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    # The child's site start-up moves its clock to this test's moment, so it counts the same day as the test.
    search = [str(SITE), *map(str, paths), *filter(None, [os.environ.get("PYTHONPATH")])]
    return env | {"PYTHONPATH": os.pathsep.join(search), "TRACKER_TEST_CLOCK": datetime.now(UTC).isoformat()} | extra


def real_clock_env() -> dict[str, str]:
    """Return this environment without libfaketime, for servers the tracker does not read the time from.

    Under a run with the machine's date moved (faketime), Chromium stalls and PostgreSQL's lock timeouts never
    fire; neither one's clock is used by the tracker, which takes every date and time from Python.
    """
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}
