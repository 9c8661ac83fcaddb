"""The excerpt rule (app/text.py), which list items carry and migration 0003 copied."""

import importlib.util

import pytest

from app.db import migrations_dir
from app.text import EXCERPT_CHARS, excerpt


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ""),
        ("short", "short"),
        ("a" * EXCERPT_CHARS, "a" * EXCERPT_CHARS),  # exactly the limit: no cut, no mark
        ("word " * 60, ("word " * 48).rstrip() + "…"),  # cut back to the last space
        ("x" * 500, "x" * EXCERPT_CHARS + "…"),  # no space late enough: cut mid-word
        ("a " + "x" * 500, "a " + "x" * (EXCERPT_CHARS - 2) + "…"),  # an early space is ignored
    ],
)
def test_excerpt_cuts_at_a_word_boundary_and_marks_the_cut(content: str, expected: str) -> None:
    assert excerpt(content) == expected
    assert len(excerpt(content)) <= EXCERPT_CHARS + 1


def test_migration_0003_applies_the_same_rule() -> None:
    path = migrations_dir() / "versions" / "0003_stored_excerpt.py"
    spec = importlib.util.spec_from_file_location("m0003", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for content in ("", "short", "word " * 60, "x" * 500, "a " + "x" * 500, "é " * 300):
        assert module._excerpt(content[: EXCERPT_CHARS + 1]) == excerpt(content)
