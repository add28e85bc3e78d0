"""A private PostgreSQL cluster for a test that must stop and start its database.

The machine's shared PostgreSQL (127.0.0.1:5432) serves every other test and engineer, so a restart test
runs its own cluster: `initdb` into a temporary folder, `pg_ctl` on a free loopback port, run as the
`postgres` user (PostgreSQL refuses to run as root). `unavailable()` says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.reliability.harness import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def unavailable() -> str | None:
    """Why a private cluster cannot be run on this machine, or None when it can."""
    if _bin_dir() is None:
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl, initdb) are not installed"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no `postgres` user to run a private PostgreSQL cluster as"
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return "a private PostgreSQL cluster needs root (to run it as `postgres`) or the `postgres` user"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser is missing (needed to run PostgreSQL as `postgres`)"
    return None


class PrivatePostgres:
    """One throwaway cluster: trust auth on 127.0.0.1:`port`, database `postgres`, fsync off (a test)."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None, unavailable()
        self.bin = bin_dir
        self.port = free_port()
        # Not under pytest's tmp_path: its parents are 0700 root, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="smc-pg-"))
        self.data = self.root / "data"
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def init(self) -> PrivatePostgres:
        """initdb (trust auth, no fsync of the new files) and start."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self) -> PrivatePostgres:
        """Start the cluster and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: `fast` (clients disconnected, clean shutdown) or `immediate` (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop if running and remove the folder."""
        with contextlib.suppress(RuntimeError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
