"""ix_movie_experiment_id: an experiment's movies by index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Plate-wide queries (docs/plate_queries.md) start from one experiment and read its movies; without
an index on ``movie.experiment_id`` both engines read the whole ``movie`` table for that (a plate
store holds many experiments). Nothing else changes.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_movie_experiment_id", "movie", ["experiment_id"])


def downgrade() -> None:
    op.drop_index("ix_movie_experiment_id", table_name="movie")
