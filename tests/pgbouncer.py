"""A real PgBouncer in transaction pooling mode in front of the suite's PostgreSQL.

`run_pgbouncer()` starts Debian's `pgbouncer` (scripts/test-prereqs installs it) on a free
loopback port with a configuration of its own, in the foreground, and stops it by its
process id at the end. Every database of the server is reachable through it by name, so
`pgbouncer.url(database_url)` is a test database's URL through the pooler.

It is set up as operators run it at scale: `pool_mode = transaction`, and few server
connections per database, so that the clients' transactions take turns on them and
nothing a session keeps (prepared statements, SET, temporary tables, session locks)
follows a client from one transaction to the next. Startup parameters it does not know
(such as `options`) are refused, as by default.
"""

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.databases import (
    PG_ADMIN_URL,
    SERVER_ACCOUNT,
    abandoned_folders,
    server_folder,
    with_server,
)
from tests.live import free_port, stop

# Server connections per database (and user): fewer than a test's clients, so they share.
SERVER_CONNECTIONS = 4
FOLDER_PREFIX = "corpus-pgbouncer-"
PID_FILE = "pgbouncer.pid"
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PgBouncer:
    port: int
    log: Path

    def url(self, database_url: str) -> str:
        """`database_url` through the pooler."""
        return with_server(database_url, "127.0.0.1", self.port)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _config(folder: Path, port: int, server_connections: int) -> Path:
    admin = make_url(PG_ADMIN_URL)
    user = admin.username or SERVER_ACCOUNT
    (folder / "users.txt").write_text(f'"{user}" "{admin.password or ""}"\n')
    server = f"host={admin.host or '127.0.0.1'} port={admin.port or 5432} user={user}"
    settings = {
        "listen_addr": "127.0.0.1",
        "listen_port": port,
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": folder / "users.txt",
        "pool_mode": "transaction",
        "default_pool_size": server_connections,
        # Each transaction to the next idle server connection, not the last one used: a
        # client that leans on its session fails at once, not by chance.
        "server_round_robin": 1,
        "max_client_conn": 1000,
        "log_connections": 0,
        "log_disconnections": 0,
        "pidfile": folder / PID_FILE,
    }
    ini = folder / "pgbouncer.ini"
    lines = [f"[databases]\n* = {server}\n[pgbouncer]\n"]
    lines += [f"{name} = {value}\n" for name, value in settings.items()]
    ini.write_text("".join(lines))
    return ini


@contextmanager
def run_pgbouncer(server_connections: int = SERVER_CONNECTIONS) -> Iterator[PgBouncer]:
    """PgBouncer on a free port until the block ends, with `server_connections` server
    connections per database."""
    _stop_abandoned()
    folder = server_folder(FOLDER_PREFIX)
    port = free_port()
    ini = _config(folder, port, server_connections)
    log = folder / "pgbouncer.log"
    with log.open("wb") as out:
        # It refuses to run as root; as root, it drops to the server's account itself (-u),
        # so the process we start and later stop is PgBouncer's own.
        user = ["-u", SERVER_ACCOUNT] if os.geteuid() == 0 else []
        command = ["pgbouncer", *user, str(ini)]
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    pooler = PgBouncer(port, log)
    try:
        _wait_until_up(pooler, process)
        yield pooler
    finally:
        stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def _stop_abandoned() -> None:
    """Stop the PgBouncer of each folder a killed test run left behind, by its pid file."""
    for folder in abandoned_folders(FOLDER_PREFIX):
        try:
            pid = int((folder / PID_FILE).read_text())
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            command = b""
        if str(folder).encode() in command:  # that process is still this folder's PgBouncer
            os.kill(pid, signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_up(pooler: PgBouncer, process: "subprocess.Popen[bytes]") -> None:
    conninfo = make_url(pooler.url(PG_ADMIN_URL)).set(drivername="postgresql")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{pooler.log_text()}")
        try:
            with psycopg.connect(conninfo.render_as_string(hide_password=False)) as connection:
                connection.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not answer in {START_TIMEOUT_S}s:\n{pooler.log_text()}")
