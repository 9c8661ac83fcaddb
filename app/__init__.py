"""article-corpus: ingest news articles into SQLite or PostgreSQL and serve them over HTTP."""
