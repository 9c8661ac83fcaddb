"""Search by meaning: the rankings of `mode=semantic` and `mode=hybrid`, and similar
articles by meaning.

- semantic: the SEMANTIC_DEPTH articles nearest the query's meaning (the cosine similarity
  of its embedding and theirs) among those the filters admit; every one of them if fewer.
- hybrid: the keyword ranking's first FUSION_DEPTH and the semantic ranking's first
  FUSION_DEPTH, fused by reciprocal rank: an article scores the sum of 1 / (RRF_K + rank)
  over the rankings it is in, so one found by both comes first, and when the words match
  nothing the semantic ranking stands alone. Equal keyword scores that straddle the
  FUSION_DEPTH-th place are left out whole (matching.top's `cut_ties`): reading them all
  cost ten times the search, for ranks that add at most 1 / (RRF_K + 500) to a score.

Filters apply exactly in both: sources, ids, id ranges and dates from the vector folder's
own columns; bylines, url and `-excluded` phrases through the search index (a narrow set of
ids, or a check of each candidate, asking again for more until enough pass). Every
ranking is whole (at most a few thousand hits), kept per index revisions, and paged by the
same (score, article_id) cursor as relevance. Knows nothing of HTTP.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import numpy.typing as npt
import tantivy

from app.cpus import cores
from app.dates import to_micros
from app.queries.cache import RevisionCache
from app.queries.ranking import Ranking
from app.search import matching
from app.search.embedder import Embedder, Vectors, article_text
from app.search.filters import ArticleFilter
from app.search.index import IndexView
from app.search.language import SearchMode, SearchQuery
from app.search.vectors import Bools, Hit, VectorView

SEMANTIC_DEPTH = 1000
FUSION_DEPTH = 1000
RRF_K = 60
# A byline, url or exclusion filter admitting at most this many articles is applied as a
# set of ids; a broader one is checked on each candidate.
NARROW_IDS = 50_000
GROWTH = 4
# Hybrid rankings ask the search index on one of these threads while the request's own
# thread scans the vectors: both release the GIL, so a hybrid search costs about the
# slower of the two rather than their sum (bench/semantic.py).
_KEYWORD_SIDE = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="hybrid")


def _keyword_top(
    searcher: tantivy.Searcher, compiled: matching.Compiled, depth: int
) -> "Future[list[Hit]]":
    return _KEYWORD_SIDE.submit(matching.top, searcher, compiled, depth, cut_ties=True)


@dataclass(frozen=True, slots=True)
class Meaning:
    """What search by meaning reads for one request: one commit of the vector folder and
    the embedder that built it."""

    vectors: VectorView
    embedder: Embedder

    def embed(self, text: str) -> Vectors:
        vector: Vectors = self.embedder.embed([text])[0]
        return vector


def _native_mask(view: VectorView, flt: ArticleFilter) -> Bools | None:
    return view.mask(
        source_ids=flt.source_ids,
        id_min=flt.id_min,
        id_max=flt.id_max,
        ids=flt.ids,
        published_from=None if flt.published_from is None else to_micros(flt.published_from),
        published_before=(
            None if flt.published_before is None else to_micros(flt.published_before)
        ),
    )


def _index_side(
    index: IndexView, query: SearchQuery | None, flt: ArticleFilter
) -> matching.Compiled | None:
    """The index query of what the vector folder cannot check itself: bylines, url and
    excluded phrases (None: nothing of the kind)."""
    side = ArticleFilter(authors=flt.authors, url=flt.url)
    excluded = query.excluded if query is not None else ()
    if not excluded and not side.news_narrowed:
        return None
    return matching.compile_search(index.index, SearchQuery((), excluded), side)


def nearest(
    index: IndexView,
    meaning: Meaning,
    vector: Vectors,
    flt: ArticleFilter,
    depth: int,
    query: SearchQuery | None = None,
) -> list[Hit]:
    """The `depth` articles nearest `vector` under `flt` (and `query`'s exclusions)."""
    view = meaning.vectors
    allowed = _native_mask(view, flt)
    side = _index_side(index, query, flt)
    if side is None:
        return view.nearest(vector, depth, allowed)
    searcher = index.searcher
    admitted = matching.count(searcher, side)
    if admitted <= NARROW_IDS:
        ids = matching.by_id(searcher, side, max(admitted, 1), descending=False)
        rows = view.rows_of(ids)
        return view.nearest(vector, depth, rows if allowed is None else allowed & rows)
    k = depth * 2
    while True:
        hits = view.nearest(vector, k, allowed)
        passing = matching.scores(searcher, side, [article_id for _, article_id in hits])
        kept = [hit for hit in hits if hit[1] in passing]
        if len(kept) >= depth or len(hits) < k:
            return kept[:depth]
        k *= GROWTH


def fuse(rankings: list[list[Hit]], depth: int | None = None) -> list[Hit]:
    """Reciprocal rank fusion of rankings (each best first): (score desc, article_id desc)."""
    scores, ids = _fused(rankings, depth)
    return list(zip(scores.tolist(), ids.tolist(), strict=True))


def _fused(
    rankings: list[list[Hit]], depth: int | None = None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """`fuse` as columns of scores and ids. In numpy: two rankings of 1,000 took 1.3 ms in
    Python's dicts, a tenth of a search."""
    rankings = [r for r in rankings if r]
    if not rankings:
        return np.zeros(0, np.float64), np.zeros(0, np.int64)
    ids = np.concatenate([np.fromiter(map(itemgetter(1), r), np.int64, len(r)) for r in rankings])
    ranks = np.concatenate([np.arange(1, len(r) + 1, dtype=np.float64) for r in rankings])
    unique, inverse = np.unique(ids, return_inverse=True)
    # Each article's terms are added in ranking order, as a running sum would add them.
    weights = 1.0 / (RRF_K + ranks)
    scores = np.bincount(inverse, weights, len(unique)).astype(np.float64, copy=False)
    order = np.lexsort((unique, scores))[::-1][:depth]  # score, then id, both descending
    return scores[order], unique[order]


def ranking(
    index: IndexView,
    meaning: Meaning,
    flt: ArticleFilter,
    cache: RevisionCache | None = None,
    compiled: matching.Compiled | None = None,
) -> Ranking:
    """The whole ranking of a semantic or hybrid search (`flt.mode`), kept in `cache` while
    both indexes are unchanged. `compiled`: the search as the request compiled it already
    (hybrid's keyword side runs it)."""
    query = flt.search
    assert query is not None, "list_query refuses a mode without q"
    if not query.ranked:  # nothing to embed (only exclusions, refused by list_query)
        return Ranking.of([], complete=True)
    key = repr(("meaning", index.revision(), *flt.fingerprint_parts()))
    revision = meaning.vectors.revision
    kept = cache.get(key, revision) if cache is not None else None
    if isinstance(kept, Ranking):
        return kept
    # Embedded before the keyword side starts: its Python work would hold the GIL that
    # the embedding needs (p95 2.3 ms against 0.05 alone); the vector scan needs little.
    vector = meaning.embed(query.meaning_text())
    keyword = None
    if flt.mode is SearchMode.HYBRID:
        if compiled is None:
            compiled = matching.compile_search(index, query, flt)
        keyword = _keyword_top(index.searcher, compiled, FUSION_DEPTH)
    semantic = nearest(index, meaning, vector, flt, SEMANTIC_DEPTH, query)
    if keyword is None:
        found = Ranking.of(semantic, complete=True)
    else:
        fused = _fused([keyword.result(), semantic[:FUSION_DEPTH]])
        found = Ranking.of_columns(*fused, complete=True)
    if cache is not None:
        cache.put(key, revision, found, weight=max(1, len(found)))
    return found


def similar(
    index: IndexView,
    meaning: Meaning,
    article_id: int,
    title: str,
    content: str,
    flt: ArticleFilter,
    *,
    mode: SearchMode,
    limit: int,
) -> list[Hit]:
    """The `limit` articles most like `article_id` by meaning (semantic) or by both its
    words and its meaning (hybrid), best first, never itself."""
    depth = max(limit, 100) if mode is SearchMode.HYBRID else limit
    keyword = None
    if mode is SearchMode.HYBRID:
        like = matching.similar_query(title, content, article_id, flt)
        keyword = _keyword_top(index.searcher, matching.Compiled(like, None), depth)
    vector = meaning.vectors.vector_of(article_id)
    if vector is None:  # not in the folder yet: embed it as the follower will
        vector = meaning.embedder.embed([article_text(title, content)])[0]
    found = nearest(index, meaning, vector, flt, depth + 1)
    semantic = [hit for hit in found if hit[1] != article_id]
    if keyword is None:
        return semantic[:limit]
    return fuse([keyword.result(), semantic[:depth]], limit)
