"""Field mapping for corpora that name things differently: `--map id=article_id`.

A stage between reading and validation: each object's mapped fields are renamed, and
everything else passes through untouched, so validation only ever sees our names.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from app.ingest.records import Located, OnReject, Reject, raw_text


@dataclass(frozen=True, slots=True)
class FieldMap:
    """Renames, from the corpus's field name to ours."""

    renames: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str]) -> "FieldMap":
        """`FROM=TO` pairs; raises ValueError naming the bad one."""
        renames: dict[str, str] = {}
        for spec in specs:
            source, sep, target = spec.partition("=")
            source, target = source.strip(), target.strip()
            if not sep or not source or not target:
                raise ValueError(f"expected FROM=TO, got {spec!r}")
            if source in renames:
                raise ValueError(f"{source!r} is mapped twice")
            renames[source] = target
        targets = list(renames.values())
        for target in targets:
            if targets.count(target) > 1:
                raise ValueError(f"more than one field is mapped to {target!r}")
        return cls(tuple(renames.items()))

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(target for _, target in self.renames)

    def apply(self, values: Iterable[Located], on_reject: OnReject) -> Iterator[Located]:
        """Each value with its mapped fields renamed; a clash of old and new name is a Reject."""
        renames = self.renames
        for item in values:
            record = item.value
            if not isinstance(record, dict) or not any(src in record for src, _ in renames):
                yield item
                continue
            mapped = dict(record)
            clash = None
            for source, target in renames:
                if source in mapped:
                    if target in record and target != source:
                        clash = f"both {source} and {target} are present (--map {source}={target})"
                        break
                    mapped[target] = mapped.pop(source)
            if clash is not None:
                on_reject(Reject(item.path, item.line, clash, raw_text(item.raw), item.index))
                continue
            yield Located(item.path, item.line, mapped, item.raw, item.index)
