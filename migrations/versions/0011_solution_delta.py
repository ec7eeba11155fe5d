"""A solution may be stored as a delta of a full one: solution_layer, solution_hidden, views

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

A re-solve changes a few cells and links in a handful of frames, yet rewrote every selected cell,
link and track of the movie (0.7 s of a 1.3 s re-solve on a 110k-cell movie). Now a solution
can be stored as a delta of a full ("base") solution: its own rows hold only the cells, links
and tracks that are new or differ from the base, and ``solution_hidden`` names the base rows it
drops or replaces; ``solution_node_stored(solution_id, t)`` is indexed so that a re-solve reads
a window's frames of the current solution, not the movie. ``solution_layer`` lists the
solutions whose rows a solution reads: itself, and its base when it is a delta (one level: a
re-solve of a re-solve stores its whole difference from the same base).

The rows move to ``solution_node_stored``, ``solution_edge_stored`` and ``track_stored``;
``solution_node``, ``solution_edge`` and ``track`` become views that resolve deltas, so every
query — trackdb's own and people's SQL — reads a delta solution like a full one. Writers write
the ``*_stored`` tables (``trackdb.store.ingest``, ``trackdb.store.solutions``). Downgrading
first writes every delta solution out in full.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = (("solution_node", "node_id"), ("solution_edge", "edge_id"), ("track", "track_id"))
KIND = {"solution_node": "node", "solution_edge": "edge", "track": "track"}
COLUMNS = {
    "solution_node": "node_id, track_id, t",
    "solution_edge": "edge_id, source_id, target_id",
    "track": "track_id, start_t, end_t, parent_track_id, confidence_min, confidence_product",
}


def view_sql(name: str, key: str) -> str:
    """The view of one table: a solution's own rows, then its base's rows it does not hide."""
    cols = ", ".join(f"r.{c.strip()}" for c in COLUMNS[name].split(","))
    return (
        f"CREATE VIEW {name} AS SELECT l.solution_id, {cols} "
        f"FROM solution_layer l JOIN {name}_stored r ON r.solution_id = l.layer_id "
        f"WHERE l.layer_id = l.solution_id OR NOT EXISTS (SELECT 1 FROM solution_hidden h "
        f"WHERE h.solution_id = l.solution_id AND h.kind = '{KIND[name]}' AND h.item_id = r.{key})"
    )


def upgrade() -> None:
    for name, _ in TABLES:
        op.rename_table(name, f"{name}_stored")
    op.create_table(
        "solution_layer",
        sa.Column("solution_id", sa.Integer(), nullable=False),
        sa.Column("layer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["solution_id"], ["solution.id"], name=op.f("fk_solution_layer_solution_id_solution"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["layer_id"], ["solution.id"], name=op.f("fk_solution_layer_layer_id_solution"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("solution_id", "layer_id", name=op.f("pk_solution_layer")),
    )
    op.create_index("ix_solution_layer_layer_id", "solution_layer", ["layer_id"])
    op.create_table(
        "solution_hidden",
        sa.Column("solution_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(5), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["solution_id"], ["solution.id"], name=op.f("fk_solution_hidden_solution_id_solution"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("solution_id", "kind", "item_id", name=op.f("pk_solution_hidden")),
    )
    op.execute("INSERT INTO solution_layer (solution_id, layer_id) SELECT id, id FROM solution")
    op.create_index("ix_solution_node_frame", "solution_node_stored", ["solution_id", "t"])
    for name, key in TABLES:
        op.execute(view_sql(name, key))


def downgrade() -> None:
    for name, _ in TABLES:
        op.execute(f"DROP VIEW {name}")
    for name, key in TABLES:  # write each delta solution out in full
        op.execute(
            f"INSERT INTO {name}_stored (solution_id, {COLUMNS[name]}) "
            f"SELECT l.solution_id, {', '.join('r.' + c.strip() for c in COLUMNS[name].split(','))} "
            f"FROM solution_layer l JOIN {name}_stored r ON r.solution_id = l.layer_id "
            f"WHERE l.layer_id <> l.solution_id AND NOT EXISTS (SELECT 1 FROM solution_hidden h "
            f"WHERE h.solution_id = l.solution_id AND h.kind = '{KIND[name]}' AND h.item_id = r.{key})"
        )
    op.drop_index("ix_solution_node_frame", table_name="solution_node_stored")
    op.drop_table("solution_hidden")
    op.drop_index("ix_solution_layer_layer_id", table_name="solution_layer")
    op.drop_table("solution_layer")
    for name, _ in TABLES:
        op.rename_table(f"{name}_stored", name)
