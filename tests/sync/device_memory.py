"""A field device's sync run as its own process with tracemalloc on, so only the device's memory is measured."""
import json
import sys
import tracemalloc
from pathlib import Path

from sync.device.client import Client, HttpTransport
from sync.device.field import database_engine, load_token
from tracker.storage import LocalStorage

if __name__ == "__main__":
    instance, server = Path(sys.argv[1]), sys.argv[2]
    engine = database_engine(f"sqlite:///{instance / 'tracker.db'}")
    client = Client(engine, LocalStorage(instance / "media"), HttpTransport(server), load_token(instance))
    tracemalloc.start()
    report = client.sync()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({"ok": report.ok, "downloaded": report.files_downloaded, "peak": peak}), flush=True)
