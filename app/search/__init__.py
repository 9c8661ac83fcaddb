"""The search index: derived from the article table, one tantivy folder per host.

    index.py     the schema, where a folder lives, opening (or rebuilding) it
    sync.py      applying the database's changes in revision order; the follower
    matching.py  our parsed queries and filters as tantivy queries: hits, counts, facets,
                 snippets, similar articles

The database stays the one source of truth: the index can always be rebuilt from it.
"""
