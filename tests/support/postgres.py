"""A throwaway PostgreSQL server for the test run, listening on 127.0.0.1 only."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import real_clock_env


def find_bin() -> Path | None:
    """Return the folder of the newest installed PostgreSQL server binaries, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL cluster in a scratch folder, started and stopped by the test run."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="tracker-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        # initdb refuses to run as root: run the server as the postgres user then.
        self.run_as = "postgres" if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def start(self) -> str:
        """Initialise and start the cluster; return a URL for its superuser."""
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run(self._cmd("initdb", "-D", str(self.data), "-U", "tracker", "--auth=trust", "-E", "UTF8",
                                 "--locale=C.UTF-8"), check=True, capture_output=True, env=real_clock_env())
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c full_page_writes=off"
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                                 "-w", "start"), check=True, capture_output=True, env=real_clock_env())
        return f"postgresql+psycopg://tracker@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        """Stop the cluster and remove its folder."""
        subprocess.run(self._cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"), capture_output=True,
                       env=real_clock_env())
        time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)
