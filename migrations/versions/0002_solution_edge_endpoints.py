"""solution_edge carries its link's endpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Lineage walks (ancestors, descendants, divisions) step from cell to cell inside one solution.
With the endpoints on ``solution_edge`` and indexed by ``(solution_id, target_id)`` /
``(solution_id, source_id)`` each step is one index probe that never touches ``edge``; the
join through ``edge`` let PostgreSQL pick a hash join over the whole solution per step when its
statistics were stale (seconds instead of milliseconds on a 1M-node store).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("solution_edge") as batch:
        batch.add_column(sa.Column("source_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("target_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE solution_edge SET "
               "source_id = (SELECT e.source_id FROM edge e WHERE e.id = solution_edge.edge_id), "
               "target_id = (SELECT e.target_id FROM edge e WHERE e.id = solution_edge.edge_id)")
    with op.batch_alter_table("solution_edge") as batch:
        batch.alter_column("source_id", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("target_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_solution_edge_source", ["solution_id", "source_id"])
        batch.create_index("ix_solution_edge_target", ["solution_id", "target_id"])


def downgrade() -> None:
    with op.batch_alter_table("solution_edge") as batch:
        batch.drop_index("ix_solution_edge_target")
        batch.drop_index("ix_solution_edge_source")
        batch.drop_column("target_id")
        batch.drop_column("source_id")
