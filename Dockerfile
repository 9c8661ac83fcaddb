# The API image: `corpus` installed from this checkout, run as a non-root user.
# Runs anywhere with DATABASE_URL set; without it, a SQLite file under /srv/app/data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# app/db.py looks for migrations/ in the working directory when the package is installed,
# and the default DATABASE_URL (sqlite:///data/corpus.db) is relative to it too.
WORKDIR /srv/app

RUN groupadd --system --gid 10001 corpus \
    && useradd --system --uid 10001 --gid corpus --home-dir /srv/app --no-create-home corpus

# pyproject.toml names README.md as the package readme, so the build needs it.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install .

COPY alembic.ini ./
COPY migrations ./migrations
COPY seeds ./seeds

# The only directory the app writes to: the SQLite default and the search index live here
# (mount a volume on it). data/index exists in the image, owned by the app's user, so a
# named volume mounted there starts out writable.
RUN mkdir -p /srv/app/data/index && chown -R corpus:corpus /srv/app/data

USER corpus

EXPOSE 8000

# slim has no curl; urlopen raises (exit 1) on a refused connection or a non-2xx status.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# Schema first, then the server; `exec` makes uvicorn PID 1 so it receives SIGTERM.
CMD ["sh", "-c", "corpus migrate && exec corpus serve --host 0.0.0.0 --port 8000 --no-access-log"]
