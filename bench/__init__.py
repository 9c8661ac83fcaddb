"""Benchmark scripts: each prints ours against a reference measured in the same run."""

import shutil
import sys


def require_wrk() -> None:
    """Stop at once, with the command that installs it, when wrk is not on PATH: the HTTP
    benchmarks drive their servers with it, after minutes of loading data."""
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL of PostgreSQL (`postgresql+psycopg://...`) as psycopg itself takes it."""
    return url.replace("+psycopg", "", 1)
