"""The embedder's word hashes and hash table (app/search/wordtable.py): words cut as
`str.split(" ")` cuts them, the same word the same hash wherever it stands, and a table
that finds every key it holds, however many share a slot, and no other."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from app.search.wordtable import SPAN, RowTable, WordHasher

WORDS = st.text(alphabet=st.sampled_from("ab é東\x00\n\t "), max_size=12)


@given(st.lists(WORDS, min_size=1, max_size=30))
def test_words_are_cut_as_split_cuts_them_and_hash_alike_wherever_they_stand(
    texts: list[str],
) -> None:
    hasher = WordHasher()
    data = " ".join(texts).encode()
    hashes, starts, ends = hasher.hash_words(data)
    words = [data[start:end].decode() for start, end in zip(starts, ends, strict=True)]
    assert words == " ".join(texts).split(" ")
    seen: dict[str, int] = {}
    for word, hashed in zip(words, hashes.tolist(), strict=True):
        assert seen.setdefault(word, hashed) == hashed
        alone, _, _ = hasher.hash_words(word.encode())  # at the start of a text of its own
        assert alone.tolist() == [hashed]
    assert len(set(seen.values())) == len(seen)  # "a", "a\x00" and "" included


def test_a_text_longer_than_the_tables_grows_them_and_hashes_as_the_short_ones() -> None:
    hasher = WordHasher()
    short, _, _ = hasher.hash_words(b"alpha beta")
    long = b" ".join([b"alpha", b"x" * SPAN, b"beta"])
    hashes, starts, ends = hasher.hash_words(long)
    assert (ends - starts).tolist() == [5, SPAN, 4]
    assert hashes[[0, 2]].tolist() == short.tolist()
    assert hasher.hash_words(b"beta alpha")[0].tolist() == short[::-1].tolist()


def test_the_table_finds_every_key_it_holds_however_many_share_a_slot() -> None:
    table = RowTable(capacity=300)
    rng = np.random.default_rng(3)
    crowded = (np.uint64(1) << np.uint64(60)) + np.arange(100, dtype=np.uint64)  # one home
    wrapping = np.uint64(2**64 - 1) - np.arange(50, dtype=np.uint64)  # the last slot's
    scattered = rng.integers(1, 2**63, 140, dtype=np.uint64)
    keys = np.concatenate([crowded, wrapping, scattered, [np.uint64(0)]])
    rows = rng.permutation(len(keys))
    for part in np.array_split(np.arange(len(keys)), 4):  # inserted in batches, as learned
        table.insert(keys[part], rows[part])
    assert table.find(keys).tolist() == rows.tolist()
    absent = np.concatenate([crowded + np.uint64(200), wrapping - np.uint64(60), [np.uint64(7)]])
    assert (table.find(absent) == -1).all()
    assert table.find(np.zeros(0, np.uint64)).tolist() == []
