"""The store: schema, engines, runs, and every read and write of SQL (nothing else holds SQL)."""

from trackdb.store.core import Movie, Store

__all__ = ["Movie", "Store"]
