"""HTTP layer: thin routers that read parameters, call one query and build the schema."""
