"""solution_node carries its cell's frame

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A lineage walk collects the cells of a few tracks and keeps those before (ancestors) or after
(descendants) the queried cell. With the frame beside each selected cell, indexed as
``(solution_id, track_id, t)``, that cut is made inside the index and only the cells returned
are looked up in ``node``; without it every cell of the track was fetched from ``node`` (a
random heap page each on PostgreSQL) and half were thrown away. The same column answers
"cells of this solution in frame t" without touching ``node``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("solution_node") as batch:
        batch.add_column(sa.Column("t", sa.Integer(), nullable=True))
    op.execute("UPDATE solution_node SET t = (SELECT n.t FROM node n WHERE n.id = solution_node.node_id)")
    with op.batch_alter_table("solution_node") as batch:
        batch.alter_column("t", existing_type=sa.Integer(), nullable=False)
        batch.drop_index("ix_solution_node_track")
        batch.create_index("ix_solution_node_track", ["solution_id", "track_id", "t"])


def downgrade() -> None:
    with op.batch_alter_table("solution_node") as batch:
        batch.drop_index("ix_solution_node_track")
        batch.create_index("ix_solution_node_track", ["solution_id", "track_id"])
        batch.drop_column("t")
