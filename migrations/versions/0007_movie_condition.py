"""movie_condition: an experiment's conditions per movie (drug, dose, genotype, well, ...)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-12

An experiment manifest gives every movie free key/value conditions. One row per movie and key:
``value`` as written (on SQLite a column without type affinity, so numbers stay numbers and
compare as numbers; on PostgreSQL text) and ``value_num``, the number for numeric conditions
(NULL otherwise), which compares as a number on both engines. Nothing to migrate: no condition
was stored before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


class _Untyped(sa.types.UserDefinedType):  # declared BLOB on SQLite: values keep their storage class
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "BLOB"


def upgrade() -> None:
    op.create_table(
        "movie_condition",
        sa.Column("movie_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("value", sa.Text().with_variant(_Untyped(), "sqlite"), nullable=False),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["movie_id"], ["movie.id"], name=op.f("fk_movie_condition_movie_id_movie"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("movie_id", "key", name=op.f("pk_movie_condition")),
    )
    op.create_index("ix_movie_condition_key", "movie_condition", ["key", "movie_id"])


def downgrade() -> None:
    op.drop_index("ix_movie_condition_key", table_name="movie_condition")
    op.drop_table("movie_condition")
