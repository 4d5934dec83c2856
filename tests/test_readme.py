"""The README's two set-up commands stay true: CI runs the test command word for word."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[str]:
    """Return the shell commands in the README's sh blocks."""
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"))


def test_readme_has_exactly_two_set_up_commands():
    """One command starts the tracker with the demo centre, one runs the tests."""
    start, test = commands()
    assert "tracker demo" in start and "tracker serve" in start
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    """`.ci/run` runs the README's test command, unchanged, then the suite again on a day 400 days on."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    at = script.index(commands()[1])
    assert any("TRACKER_TEST_NOW=" in line for line in script[at + 1:])
