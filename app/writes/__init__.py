"""The write side, shared by ingest and takedowns: the one write lock, revisions numbered
under it, and waiting out other writers. Ingest's batch stores (app/ingest/stores.py) and
takedowns (app/takedowns.py) both take the lock here; neither borrows from the other."""
