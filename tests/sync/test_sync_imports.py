"""The sync package is framework-free: importing it never brings Flask in."""
import subprocess
import sys


def test_sync_imports_without_flask():
    """A fresh interpreter importing sync, sync.push and sync.tokens has no flask module loaded."""
    code = ("import sys, sync, sync.push, sync.tokens; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flask'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
