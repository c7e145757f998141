"""A throwaway PostgreSQL server for the store tests: `initdb` + `pg_ctl` in a temp dir.

Debian's `postgresql` package puts its binaries in /usr/lib/postgresql/<major>/bin
(not on PATH). PostgreSQL refuses to run as root, so under root the server runs as
the `postgres` user (or `nobody`) in a directory it owns. It listens on 127.0.0.1
on a free port with `trust` auth for the one role `agentflow`, and is stopped (and
its directory removed) when the tests end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl, or one on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    for directory in candidates:
        if (Path(directory) / "initdb").exists() and (Path(directory) / "pg_ctl").exists():
            return Path(directory)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgServer:
    bin: Path
    directory: Path
    port: int
    _demote: Callable[[], None] | None

    @property
    def url(self) -> str:
        return f"postgresql://agentflow@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgresql://agentflow@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True, text=True, timeout=120, preexec_fn=self._demote, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}"
            )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_pg_server(pg_bin: Path) -> PgServer:
    """initdb a new cluster in a temp dir and start it on a free port."""
    directory = Path(tempfile.mkdtemp(prefix="agentflow-pg-"))
    demote = None
    if os.geteuid() == 0:  # postgres refuses root: run it as an unprivileged user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(directory, user.pw_uid, user.pw_gid)
        os.chmod(directory, 0o700)
        uid, gid = user.pw_uid, user.pw_gid

        def demote() -> None:
            os.setgid(gid)
            os.setuid(uid)

    server = PgServer(pg_bin, directory, _free_port(), demote)
    data = directory / "data"
    server._run("initdb", "-D", str(data), "-U", "agentflow", "--auth=trust", "-E", "UTF8")
    options = (
        f"-c listen_addresses=127.0.0.1 -p {server.port} -k {directory} "
        "-c fsync=off -c max_connections=60"
    )
    server._run(
        "pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"
    )
    return server
