"""node.hier_parent_id index only over the nodes that have a parent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Candidates from label images (and every forest root) have no containing candidate, so most
``hier_parent_id`` values are NULL. A full index stores one entry per NULL and costs a B-tree
insert per node on every bulk load; lookups only ever ask for children of a given node
(``hier_parent_id = ?``), which a partial index ``WHERE hier_parent_id IS NOT NULL`` answers on
both engines.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_WHERE = sa.text("hier_parent_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("node") as batch:
        batch.drop_index("ix_node_hier_parent_id")
        batch.create_index("ix_node_hier_parent_id", ["hier_parent_id"],
                           sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    with op.batch_alter_table("node") as batch:
        batch.drop_index("ix_node_hier_parent_id")
        batch.create_index("ix_node_hier_parent_id", ["hier_parent_id"])
