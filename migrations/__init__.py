"""Alembic environment and revisions: the only way trackdb's schema changes."""
