"""option_score: an uncertainty method's temperature-free scores, for reuse at another temperature

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

``trackdb calibrate`` scores every option of the current solution's model at T = 1 to fit the
temperature; ``trackdb uncertainty`` on the same model then needs exactly those scores (a
temperature only divides them before the softmax). One row per run that computed them: the
digest of what they describe (model costs, ids, solution, method, K, scoring code), the method's
report as JSON, and the per-option arrays as one ``numpy.savez`` blob (read with
``allow_pickle=False``). Nothing to migrate: older calibrations kept no scores.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "option_score",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("info", sa.JSON(), nullable=True),
        sa.Column("arrays", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_option_score_run_id_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_option_score")),
    )
    op.create_index("ix_option_score_key", "option_score", ["key"])


def downgrade() -> None:
    op.drop_index("ix_option_score_key", table_name="option_score")
    op.drop_table("option_score")
