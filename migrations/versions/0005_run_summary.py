"""run.summary: what a succeeded run reports, apart from a failed run's error message

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Uncertainty runs wrote their JSON summary into ``run.message``, the column that holds a failed
run's error, so a reader had to guess which of the two a message was. The summary gets its own
JSON column; the summaries already stored move there and their message is cleared.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_run = sa.table("run", sa.column("id", sa.Integer), sa.column("kind", sa.String), sa.column("status", sa.String),
                sa.column("message", sa.Text), sa.column("summary", sa.JSON))


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("summary", sa.JSON(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(_run.c.id, _run.c.message).where(
        _run.c.kind == "uncertainty", _run.c.status == "succeeded", _run.c.message.is_not(None))).all()
    for run_id, message in rows:
        try:
            summary = json.loads(message)
        except ValueError:
            continue
        conn.execute(_run.update().where(_run.c.id == run_id).values(summary=summary, message=None))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_run.c.id, _run.c.summary).where(_run.c.summary.is_not(None))).all()
    for run_id, summary in rows:
        conn.execute(_run.update().where(_run.c.id == run_id).values(message=json.dumps(summary)))
    with op.batch_alter_table("run") as batch:
        batch.drop_column("summary")
