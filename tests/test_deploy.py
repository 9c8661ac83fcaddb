"""Deployment files, checked by parsing: no Docker engine is needed.

docker-compose.yml is read with PyYAML and the Dockerfile as text, so a wrong database URL,
a missing health condition or a COPY of a path that moved fails here rather than at deploy.
"""

import fnmatch
import json
import re
import shlex
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# --- docker-compose.yml ---------------------------------------------------------------------


def _mapping(value: object, what: str) -> dict[str, object]:
    assert isinstance(value, dict), f"{what} should be a mapping, got {value!r}"
    return {str(key): item for key, item in value.items()}


@cache
def _services() -> dict[str, dict[str, object]]:
    compose = _mapping(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), "compose file")
    services = _mapping(compose.get("services"), "services")
    return {name: _mapping(spec, f"service {name}") for name, spec in services.items()}


def _service(name: str) -> dict[str, object]:
    services = _services()
    assert name in services, f"no service {name!r} in docker-compose.yml"
    return services[name]


def _app_services() -> list[str]:
    """Services built from this repository, i.e. running our code."""
    return sorted(name for name, spec in _services().items() if "build" in spec)


def _environment(spec: dict[str, object]) -> dict[str, str]:
    """A service's environment, from either the mapping or the `KEY=value` list form."""
    env = spec.get("environment", {})
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {key: str(value) for key, value in _mapping(env, "environment").items()}


def _command(spec: dict[str, object]) -> str:
    command = spec.get("command", "")
    if isinstance(command, list):
        return shlex.join(str(part) for part in command)
    assert isinstance(command, str)
    return command


def _depends_on(spec: dict[str, object]) -> dict[str, str]:
    """Each dependency and its condition (the short list form means `service_started`)."""
    depends_on = spec.get("depends_on", {})
    if isinstance(depends_on, list):
        return {str(name): "service_started" for name in depends_on}
    return {
        name: str(_mapping(options, f"depends_on.{name}").get("condition", "service_started"))
        for name, options in _mapping(depends_on, "depends_on").items()
    }


def _container_ports(spec: dict[str, object]) -> set[int]:
    """Container ports published to the host, from short (`"8000:8000"`) or long syntax."""
    ports: set[int] = set()
    entries = spec.get("ports", [])
    assert isinstance(entries, list)
    for entry in entries:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            target = str(entry).rsplit(":", 1)[-1].split("/")[0]
            ports.add(int(target))
    return ports


def test_compose_db_service_has_a_pg_isready_healthcheck() -> None:
    healthcheck = _mapping(_service("db").get("healthcheck"), "db healthcheck")
    test = healthcheck.get("test")
    test_text = " ".join(str(part) for part in test) if isinstance(test, list) else str(test)
    assert "pg_isready" in test_text
    assert healthcheck.get("disable") is not True


def test_compose_builds_the_app_for_migrate_and_api() -> None:
    assert {"migrate", "api"} <= set(_app_services())


def test_compose_wires_database_url_to_db_service() -> None:
    db_env = _environment(_service("db"))
    # The postgres image names the database after the user when POSTGRES_DB is unset.
    expected = (
        "db",
        db_env["POSTGRES_USER"],
        db_env["POSTGRES_PASSWORD"],
        db_env.get("POSTGRES_DB", db_env["POSTGRES_USER"]),
    )
    for name in _app_services():
        env = _environment(_service(name))
        assert "DATABASE_URL" in env, f"service {name} has no DATABASE_URL"
        url = urlsplit(env["DATABASE_URL"])
        assert url.scheme.startswith("postgresql"), name
        assert url.port in (None, 5432), name
        actual = (url.hostname, url.username, url.password, url.path.lstrip("/"))
        assert actual == expected, name


@pytest.mark.parametrize("service", ["migrate", "api"])
def test_compose_app_services_wait_for_healthy_db(service: str) -> None:
    assert _depends_on(_service(service)).get("db") == "service_healthy"


def test_compose_api_starts_after_migrate_succeeds() -> None:
    depends_on = _depends_on(_service("api"))
    assert depends_on.get("db") == "service_healthy"
    assert depends_on.get("migrate") == "service_completed_successfully"


def test_compose_migrate_migrates_then_ingests_once() -> None:
    spec = _service("migrate")
    command = _command(spec)
    assert "corpus migrate" in command
    assert "corpus ingest" in command
    assert command.index("corpus migrate") < command.index("corpus ingest")
    # A bare `no` would load as False; compose wants the string.
    assert spec.get("restart", "no") == "no"


def test_compose_api_publishes_the_port_it_serves_on() -> None:
    spec = _service("api")
    assert 8000 in _container_ports(spec)
    command = _command(spec)
    assert "corpus serve" in command
    assert "--host 0.0.0.0" in command
    assert "--port 8000" in command


# --- Dockerfile -----------------------------------------------------------------------------


@cache
def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def _arguments(keyword: str) -> list[str]:
    return [arguments for kw, arguments in _instructions() if kw == keyword]


def _final_stage() -> list[tuple[str, str]]:
    """The instructions of the last build stage: the image that actually runs."""
    instructions = _instructions()
    last_from = max(i for i, (kw, _) in enumerate(instructions) if kw == "FROM")
    return instructions[last_from:]


def _exec_form(arguments: str) -> list[str]:
    """A CMD/COPY argument list, from JSON (exec) form or shell form."""
    if arguments.startswith("["):
        parsed = json.loads(arguments)
        assert isinstance(parsed, list)
        return [str(part) for part in parsed]
    return shlex.split(arguments)


def test_dockerfile_builds_from_python_311_or_newer_slim() -> None:
    image = _final_stage()[0][1].split()[0]
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:\.\d+)?-slim(?:-\w+)?", image)
    assert match, f"final stage should be FROM python:3.X-slim, got {image}"
    assert (int(match[1]), int(match[2])) >= (3, 11)


def test_dockerfile_runs_as_non_root_user() -> None:
    users = [arguments for kw, arguments in _final_stage() if kw == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_has_a_healthcheck_on_healthz() -> None:
    healthchecks = _arguments("HEALTHCHECK")
    assert len(healthchecks) == 1
    assert "/healthz" in healthchecks[0]
    assert "NONE" not in healthchecks[0].split()


def test_dockerfile_exposes_port_8000() -> None:
    assert any("8000" in arguments.split() for arguments in _arguments("EXPOSE"))


def test_dockerfile_cmd_migrates_before_serving() -> None:
    commands = _arguments("CMD")
    assert commands, "no CMD"
    command = " ".join(_exec_form(commands[-1]))
    assert "corpus migrate" in command
    assert "corpus serve" in command
    between = command[command.index("corpus migrate") : command.index("corpus serve")]
    # `&&`: a failed migration must stop the server from starting on a stale schema.
    assert "&&" in between


def _copy_sources() -> list[str]:
    """Sources of every COPY/ADD from the build context (not `--from=` another stage)."""
    sources: list[str] = []
    for keyword, arguments in _instructions():
        if keyword not in ("COPY", "ADD"):
            continue
        parts = _exec_form(arguments)
        flags = [part for part in parts if part.startswith("--")]
        if any(flag.startswith("--from=") for flag in flags):
            continue
        paths = [part for part in parts if not part.startswith("--")]
        assert len(paths) >= 2, f"{keyword} {arguments}: needs a source and a destination"
        sources.extend(paths[:-1])
    return sources


def test_dockerfile_copies_only_paths_that_exist() -> None:
    sources = _copy_sources()
    assert sources
    missing = [
        src
        for src in sources
        if not (ROOT / src).exists() and not any(ROOT.glob(src.removeprefix("./")))
    ]
    assert missing == []


def test_dockerignore_keeps_local_state_out_but_not_copied_paths() -> None:
    patterns = [
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for local_state in (".venv", "data", ".git"):
        assert local_state in patterns
    ignored = [
        src
        for src in _copy_sources()
        for pattern in patterns
        if fnmatch.fnmatch(src.removeprefix("./").rstrip("/"), pattern)
    ]
    assert ignored == []


def test_compose_api_keeps_its_search_index_on_a_volume_the_image_lets_it_write() -> None:
    api = _service("api")
    environment = _mapping(api["environment"], "api environment")
    root = environment["CORPUS_INDEX_ROOT"]
    assert api["volumes"] == [f"index:{root}"]
    compose = _mapping(yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8")), "compose file")
    assert "index" in _mapping(compose["volumes"], "volumes")
    dockerfile = (COMPOSE_FILE.parent / "Dockerfile").read_text(encoding="utf-8")
    assert f"mkdir -p {root}" in dockerfile
    assert "chown -R corpus:corpus /srv/app/data" in dockerfile
