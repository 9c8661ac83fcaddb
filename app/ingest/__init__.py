"""Ingestion as generator stages: read → validate → write, each testable on a plain list."""
