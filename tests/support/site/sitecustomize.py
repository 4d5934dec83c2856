"""Start-up for the processes of a test run (put on PYTHONPATH by the run's helpers): one clock for all of them."""
import os

if os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") and "faketime" in os.environ.get("LD_PRELOAD", ""):
    # Under libfaketime 0.9.10 (a run with the machine's date moved), Python 3.11's sleep, an absolute
    # clock_nanosleep on the monotonic clock, fails with EINVAL; a timed wait on an event sleeps correctly.
    import threading
    import time

    def _sleep(seconds: float) -> None:
        if seconds > 0:
            threading.Event().wait(seconds)

    time.sleep = _sleep

if moment := os.environ.get("TRACKER_TEST_CLOCK"):
    # A process a test started begins at the moment its test had reached, so both count the same day.
    import time_machine

    time_machine.travel(moment, tick=True).start()
