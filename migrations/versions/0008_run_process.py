"""run.pid / host / process_started: the process that began each run

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12

A run killed with SIGKILL (or whose machine went down) stayed ``running`` forever, so
``running`` did not mean running. Each run now records the process that began it: pid, host
name and the process's start time (epoch seconds; a later process that reuses the pid starts
later). Commands that list or resume runs mark a ``running`` run of this host whose process is
gone as ``failed`` with the reason (``trackdb.store.runs.reap``). Runs written before this
revision have no process (NULL): nothing can be said about them, they are left as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run") as batch:
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("process_started", sa.Float(), nullable=True))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of ``run`` would have to
    # drop the table every node, edge and solution refers to
    for column in ("process_started", "host", "pid"):
        op.drop_column("run", column)
