"""The review page: a local web app to go through the doubtful places of a movie, see their
pixels and lineage, and fix them with edits that re-solve at once (``trackdb review``).

A layer above :mod:`trackdb.stages` like :mod:`trackdb.cli`: it reads through
:mod:`trackdb.store` and edits through :mod:`trackdb.stages.edits` and
:mod:`trackdb.stages.resolve`, and holds no SQL.
"""

from trackdb.review.app import create_app

__all__ = ["create_app"]
