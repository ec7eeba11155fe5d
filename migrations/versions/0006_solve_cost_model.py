"""cost_model: the final cost model of every solve, so a re-solve uses exactly its costs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10

A solve refines its costs over rounds (motion field, noise scales, division geometry and rates
re-estimated from each solution); the last round's model is what its solution is optimal for.
Without it stored, a re-solve of edited frames could only re-estimate the costs from the stored
solution, and its result differed from the solve's own (4 of 3,515 bacteria links). One row per
solve run: the scalars and the cost parameters as JSON, the per-candidate arrays (node ids,
motion shift, division rate, node costs) as one ``numpy.savez`` blob (read with
``allow_pickle=False``). Solves written before this revision have no row; their re-solves keep
re-estimating (nothing to migrate: the model cannot be recovered from what was stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cost_model",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("n_nodes", sa.Integer(), nullable=False),
        sa.Column("scalars", sa.JSON(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("arrays", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_cost_model_run_id_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_cost_model")),
    )


def downgrade() -> None:
    op.drop_table("cost_model")
