"""A real streaming replica of the suite's PostgreSQL, as operators make one.

`run_replica()` copies the whole server with `pg_basebackup -R` (which also writes the
standby's connection to its primary) into a folder of its own, starts it as a hot standby
on a free loopback port, and stops it by its data folder's postmaster at the end. Every
database made on the primary appears on the replica as WAL arrives, so
`replica.url(database_url)` is a test database's URL on the replica, and
`replica.caught_up(database_url)` waits until the replica has replayed everything the
primary had written when it was called.

The primary must accept replication connections from 127.0.0.1 (scripts/test-prereqs
checks, and allows them on a local server it may configure). The copy takes a few seconds
on a small server; the suite makes one per session. A replica that a killed test run
left running is stopped by the next run.
"""

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from tests.databases import (
    PG_ADMIN_URL,
    abandoned_folders,
    as_server_account,
    give_to_server_account,
    pg_bin,
    pg_scalar,
    server_folder,
    with_server,
)
from tests.live import free_port

CATCH_UP_TIMEOUT_S = 30.0
FOLDER_PREFIX = "corpus-replica-"
# A hot standby needs at least the primary's values of these.
MATCHED_SETTINGS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


@dataclass(frozen=True)
class Replica:
    port: int
    folder: Path

    def url(self, database_url: str) -> str:
        """`database_url`'s database on the replica."""
        return with_server(database_url, "127.0.0.1", self.port)

    def caught_up(self, database_url: str = PG_ADMIN_URL) -> None:
        """Wait until the replica has replayed what the primary has written so far, and
        `database_url`'s database is open there."""
        target = str(pg_scalar(PG_ADMIN_URL, "SELECT pg_current_wal_lsn()"))
        query = text("SELECT pg_last_wal_replay_lsn() >= CAST(:target AS pg_lsn)")
        engine = create_engine(self.url(database_url), isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        try:
            while True:
                try:
                    with engine.connect() as connection:
                        if connection.execute(query, {"target": target}).scalar():
                            return
                except OperationalError:  # the database is not there yet
                    if time.monotonic() >= deadline:
                        raise
                assert time.monotonic() < deadline, f"the replica did not reach {target}"
                time.sleep(0.02)
        finally:
            engine.dispose()


def _settings_file(port: int) -> str:
    matched = {name: pg_scalar(PG_ADMIN_URL, f"SHOW {name}") for name in MATCHED_SETTINGS}
    lines = {
        "port": port,
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": "''",
        "hot_standby": "on",
        "hot_standby_feedback": "on",
        "shared_buffers": "'32MB'",
        "fsync": "off",  # a throwaway copy: nothing to recover after a crash
        **matched,
    }
    return "".join(f"{name} = {value}\n" for name, value in lines.items())


@contextmanager
def run_replica() -> Iterator[Replica]:
    """A hot standby of the admin URL's server on a free port, until the block ends."""
    pg_ctl = pg_bin("pg_ctl")
    for abandoned in abandoned_folders(FOLDER_PREFIX):  # by a killed test run
        _stop(pg_ctl, abandoned / "data")
        shutil.rmtree(abandoned, ignore_errors=True)
    folder = server_folder(FOLDER_PREFIX)
    data = folder / "data"
    port = free_port()
    primary = make_url(PG_ADMIN_URL)
    backup = [
        pg_bin("pg_basebackup"),
        f"--host={primary.host or '127.0.0.1'}",
        f"--port={primary.port or 5432}",
        f"--username={primary.username or 'postgres'}",
        f"--pgdata={data}",
        "--write-recovery-conf",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--no-sync",
    ]
    started = False
    try:
        _run(as_server_account(backup))
        # Debian keeps a cluster's configuration outside its data folder: give the copy its own.
        settings = (data / "postgresql.conf", _settings_file(port))
        access = (data / "pg_hba.conf", "host all all 127.0.0.1/32 trust\n")
        for path, content in (settings, access, (data / "pg_ident.conf", "")):
            path.write_text(content)
            give_to_server_account(path)
        log = folder / "postgresql.log"
        start = [pg_ctl, "start", "--wait", "--timeout=60", f"--pgdata={data}", f"--log={log}"]
        _run(as_server_account(start))
        started = True
        yield Replica(port, folder)
    finally:
        if started:
            _stop(pg_ctl, data)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(pg_ctl: str, data: Path) -> None:
    """Stop the server of `data` (pg_ctl finds it by the postmaster.pid there), if any."""
    stop = [pg_ctl, "stop", "--wait", "--mode=immediate", f"--pgdata={data}"]
    subprocess.run(as_server_account(stop), capture_output=True, check=False)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
