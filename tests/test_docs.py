"""The examples in docs/ are real: each `curl` example followed by a JSON answer is sent to the
app on the seeded test corpus, and the answer must match what the page shows.

In a documented answer, `…` inside a string stands for any text (so `"…"` is any string, and
`"Body…"` any string that starts with `Body`): the docs say so where the examples are.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ELIDED = "…"
# A one-line ```sh block holding a curl command, then (blank lines between) a ```json block.
_EXAMPLE = re.compile(r"```sh\n(curl [^\n]*)\n```\n\s*```json\n(.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    url: str
    answer: object


def examples() -> list[Example]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        for match in _EXAMPLE.finditer(text):
            args = shlex.split(match.group(1))
            assert len(args) == 2, f"{page.name}: a tested example is a plain `curl URL`"
            parts = urlsplit(args[1])
            url = parts.path + (f"?{parts.query}" if parts.query else "")
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(page.name, line, url, orjson.loads(match.group(2))))
    return found


def mismatches(documented: object, actual: object, where: str = "$") -> list[str]:
    """Where `actual` differs from `documented`, with `…` elisions honoured."""
    if isinstance(documented, str) and ELIDED in documented:
        pattern = ".*".join(re.escape(part) for part in documented.split(ELIDED))
        if isinstance(actual, str) and re.fullmatch(pattern, actual, re.DOTALL):
            return []
        return [f"{where}: {actual!r} is not {documented!r}"]
    if isinstance(documented, dict) and isinstance(actual, dict):
        if documented.keys() != actual.keys():
            return [f"{where}: keys {sorted(actual)} are documented as {sorted(documented)}"]
        return [m for k in documented for m in mismatches(documented[k], actual[k], f"{where}.{k}")]
    if isinstance(documented, list) and isinstance(actual, list):
        if len(documented) != len(actual):
            return [f"{where}: {len(actual)} items, documented {len(documented)}"]
        return [
            m
            for i, (d, a) in enumerate(zip(documented, actual, strict=True))
            for m in mismatches(d, a, f"{where}[{i}]")
        ]
    return [] if documented == actual else [f"{where}: {actual!r}, documented {documented!r}"]


EXAMPLES = examples()


def test_the_docs_have_examples_of_every_endpoint() -> None:
    paths = {urlsplit(e.url).path for e in EXAMPLES}
    assert {"/v1/articles", "/v1/articles/166812", "/v1/sources", "/v1/changes"} <= paths
    assert len(EXAMPLES) >= 10


def test_the_api_page_names_every_path_and_parameter() -> None:
    """openapi.json is the contract: a route or parameter added there needs its docs."""
    page = (DOCS / "api.md").read_text()
    document = orjson.loads((ROOT / "openapi.json").read_bytes())
    missing = [path for path in document["paths"] if f"`GET {path}`" not in page]
    missing += [
        f"{path}: {parameter['name']}"
        for path, item in document["paths"].items()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if f"`{parameter['name']}`" not in page
    ]
    assert missing == [], "docs/api.md does not document these"


@pytest.mark.anyio
@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.page}:{e.line}" for e in EXAMPLES])
async def test_documented_answer_is_what_the_api_says(
    example: Example, seeded: httpx.AsyncClient
) -> None:
    response = await seeded.get(example.url)
    assert mismatches(example.answer, response.json()) == [], (
        f"docs/{example.page}:{example.line}: GET {example.url} answered {response.status_code}:"
        f"\n{response.text}"
    )


@pytest.mark.parametrize(
    ("documented", "actual", "ok"),
    [
        ("Body of…", "Body of article 8.", True),
        ("Body of…", "Title", False),
        (ELIDED, "2026-01-01T00:00:00Z", True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1], False),
        ({"a": [{"b": "x…"}]}, {"a": [{"b": "xyz"}]}, True),
        ("…<mark>a</mark> b…", "x <mark>a</mark> b y", True),
        ("…<mark>a</mark> b…", "x <mark>a</mark> c", False),
        ("ends with a cut…", "ends with a cut…", True),
        (None, 0, False),
    ],
)
def test_elisions_match_only_what_they_say(documented: object, actual: object, ok: bool) -> None:
    assert (mismatches(documented, actual) == []) is ok
