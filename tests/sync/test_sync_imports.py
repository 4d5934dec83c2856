"""The sync package is framework-free: importing it never brings Flask in."""
import subprocess
import sys


def test_sync_imports_without_flask():
    """A fresh interpreter importing every module of both sides of sync has no flask module loaded."""
    code = ("import sys, sync, sync.centre.media, sync.centre.pull, sync.centre.push, sync.centre.tokens, "
            "sync.device.client, sync.device.downloads, sync.device.field, sync.device.outbox; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'flask'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
