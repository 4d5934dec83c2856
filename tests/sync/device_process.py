"""A field device's sync, run as its own process so a test can SIGKILL it at any moment."""
import sys

from sync.device.client import Client, HttpTransport
from sync.device.field import database_engine

if __name__ == "__main__":
    url, server, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = database_engine(url)
    report = Client(engine, None, HttpTransport(server, timeout=10), "token", batch=batch).sync()
    print(report.pushed, report.error, flush=True)
    sys.exit(0 if report.ok else 1)
