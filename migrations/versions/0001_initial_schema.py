"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22

Creates the whole schema of DESIGN.md (see trackdb/schema.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('experiment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_experiment')),
    sa.UniqueConstraint('name', name=op.f('uq_experiment_name'))
    )
    op.create_table('id_block',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('next_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_id_block'))
    )
    op.create_table('movie',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('uri', sa.Text(), nullable=True),
    sa.Column('ndim', sa.Integer(), nullable=False),
    sa.Column('n_frames', sa.Integer(), nullable=False),
    sa.Column('size_z', sa.Integer(), nullable=True),
    sa.Column('size_y', sa.Integer(), nullable=False),
    sa.Column('size_x', sa.Integer(), nullable=False),
    sa.Column('spacing_z', sa.Float(), nullable=True),
    sa.Column('spacing_y', sa.Float(), nullable=False),
    sa.Column('spacing_x', sa.Float(), nullable=False),
    sa.Column('time_interval', sa.Float(), nullable=True),
    sa.Column('zarr_uri', sa.Text(), nullable=True),
    sa.Column('current_solution_id', sa.BigInteger(), nullable=True),
    sa.Column('meta', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiment.id'], name=op.f('fk_movie_experiment_id_experiment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_movie')),
    sa.UniqueConstraint('name', name=op.f('uq_movie_name'))
    )
    op.create_table('run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('movie_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('code_version', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('parent_run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['movie_id'], ['movie.id'], name=op.f('fk_run_movie_id_movie'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_run_id'], ['run.id'], name=op.f('fk_run_parent_run_id_run')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run'))
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_movie_id'), ['movie_id'], unique=False)

    op.create_table('calibration',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=False),
    sa.Column('ece_before', sa.Float(), nullable=True),
    sa.Column('ece_after', sa.Float(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_calibration_run_id_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calibration')),
    sa.UniqueConstraint('name', 'method', name=op.f('uq_calibration_name_method'))
    )
    op.create_table('edge',
    sa.Column('id', ID_TYPE, autoincrement=False, nullable=False),
    sa.Column('movie_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('target_id', sa.BigInteger(), nullable=False),
    sa.Column('t', sa.Integer(), nullable=False),
    sa.Column('dt', sa.Integer(), nullable=False),
    sa.Column('distance', sa.Float(), nullable=True),
    sa.Column('iou', sa.Float(), nullable=True),
    sa.Column('offset_vote', sa.Float(), nullable=True),
    sa.Column('embedding_distance', sa.Float(), nullable=True),
    sa.Column('cost', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['movie_id'], ['movie.id'], name=op.f('fk_edge_movie_id_movie'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_edge_run_id_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edge'))
    )
    with op.batch_alter_table('edge', schema=None) as batch_op:
        batch_op.create_index('ix_edge_movie_t', ['movie_id', 't'], unique=False)
        batch_op.create_index('ix_edge_run_t', ['run_id', 't'], unique=False)
        batch_op.create_index('ix_edge_source_id', ['source_id'], unique=False)
        batch_op.create_index('ix_edge_target_id', ['target_id'], unique=False)

    op.create_table('edge_probability',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('edge_id', sa.BigInteger(), nullable=False),
    sa.Column('p', sa.Float(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_edge_probability_run_id_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'edge_id', name=op.f('pk_edge_probability'))
    )
    with op.batch_alter_table('edge_probability', schema=None) as batch_op:
        batch_op.create_index('ix_edge_probability_edge_id', ['edge_id'], unique=False)
        batch_op.create_index('ix_edge_probability_run_p', ['run_id', 'p'], unique=False)

    op.create_table('edit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('movie_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('author', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('t_start', sa.Integer(), nullable=True),
    sa.Column('t_end', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['movie_id'], ['movie.id'], name=op.f('fk_edit_movie_id_movie'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_edit_run_id_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edit'))
    )
    with op.batch_alter_table('edit', schema=None) as batch_op:
        batch_op.create_index('ix_edit_movie_id', ['movie_id'], unique=False)

    op.create_table('node',
    sa.Column('id', ID_TYPE, autoincrement=False, nullable=False),
    sa.Column('movie_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('t', sa.Integer(), nullable=False),
    sa.Column('label', sa.BigInteger(), nullable=False),
    sa.Column('z', sa.Float(), nullable=True),
    sa.Column('y', sa.Float(), nullable=False),
    sa.Column('x', sa.Float(), nullable=False),
    sa.Column('area', sa.Integer(), nullable=False),
    sa.Column('bbox_z0', sa.Integer(), nullable=True),
    sa.Column('bbox_y0', sa.Integer(), nullable=False),
    sa.Column('bbox_x0', sa.Integer(), nullable=False),
    sa.Column('bbox_z1', sa.Integer(), nullable=True),
    sa.Column('bbox_y1', sa.Integer(), nullable=False),
    sa.Column('bbox_x1', sa.Integer(), nullable=False),
    sa.Column('hier_parent_id', sa.BigInteger(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('max_prob', sa.Float(), nullable=True),
    sa.Column('prev_z', sa.Float(), nullable=True),
    sa.Column('prev_y', sa.Float(), nullable=True),
    sa.Column('prev_x', sa.Float(), nullable=True),
    sa.Column('mask', sa.LargeBinary(), nullable=True),
    sa.Column('embedding', sa.LargeBinary(), nullable=True),
    sa.Column('embedding_dim', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['movie_id'], ['movie.id'], name=op.f('fk_node_movie_id_movie'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_node_run_id_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_node')),
    sa.UniqueConstraint('run_id', 't', 'label', name=op.f('uq_node_run_id_t_label'))
    )
    with op.batch_alter_table('node', schema=None) as batch_op:
        batch_op.create_index('ix_node_hier_parent_id', ['hier_parent_id'], unique=False)
        batch_op.create_index('ix_node_movie_t', ['movie_id', 't'], unique=False)

    op.create_table('node_probability',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.BigInteger(), nullable=False),
    sa.Column('p', sa.Float(), nullable=False),
    sa.Column('entropy', sa.Float(), nullable=True),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_node_probability_run_id_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id', name=op.f('pk_node_probability'))
    )
    with op.batch_alter_table('node_probability', schema=None) as batch_op:
        batch_op.create_index('ix_node_probability_node_id', ['node_id'], unique=False)
        batch_op.create_index('ix_node_probability_run_p', ['run_id', 'p'], unique=False)

    op.create_table('solution',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('movie_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('objective', sa.Float(), nullable=True),
    sa.Column('bound', sa.Float(), nullable=True),
    sa.Column('gap', sa.Float(), nullable=True),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['movie_id'], ['movie.id'], name=op.f('fk_solution_movie_id_movie'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['run.id'], name=op.f('fk_solution_run_id_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_solution')),
    sa.UniqueConstraint('run_id', 'rank', name=op.f('uq_solution_run_id_rank'))
    )
    with op.batch_alter_table('solution', schema=None) as batch_op:
        batch_op.create_index('ix_solution_movie_id', ['movie_id'], unique=False)

    op.create_table('solution_edge',
    sa.Column('solution_id', sa.Integer(), nullable=False),
    sa.Column('edge_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['solution_id'], ['solution.id'], name=op.f('fk_solution_edge_solution_id_solution'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('solution_id', 'edge_id', name=op.f('pk_solution_edge'))
    )
    with op.batch_alter_table('solution_edge', schema=None) as batch_op:
        batch_op.create_index('ix_solution_edge_edge_id', ['edge_id'], unique=False)

    op.create_table('solution_node',
    sa.Column('solution_id', sa.Integer(), nullable=False),
    sa.Column('node_id', sa.BigInteger(), nullable=False),
    sa.Column('track_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['solution_id'], ['solution.id'], name=op.f('fk_solution_node_solution_id_solution'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('solution_id', 'node_id', name=op.f('pk_solution_node'))
    )
    with op.batch_alter_table('solution_node', schema=None) as batch_op:
        batch_op.create_index('ix_solution_node_node_id', ['node_id'], unique=False)
        batch_op.create_index('ix_solution_node_track', ['solution_id', 'track_id'], unique=False)

    op.create_table('track',
    sa.Column('solution_id', sa.Integer(), nullable=False),
    sa.Column('track_id', sa.BigInteger(), nullable=False),
    sa.Column('start_t', sa.Integer(), nullable=False),
    sa.Column('end_t', sa.Integer(), nullable=False),
    sa.Column('parent_track_id', sa.BigInteger(), nullable=True),
    sa.Column('confidence_min', sa.Float(), nullable=True),
    sa.Column('confidence_product', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['solution_id'], ['solution.id'], name=op.f('fk_track_solution_id_solution'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('solution_id', 'track_id', name=op.f('pk_track'))
    )
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.create_index('ix_track_parent', ['solution_id', 'parent_track_id'], unique=False)

    # Id blocks start at 1 for nodes and edges (trackdb.ingest.allocate_ids hands out ranges).
    id_block = sa.table("id_block", sa.column("name", sa.String), sa.column("next_id", sa.BigInteger))
    op.bulk_insert(id_block, [{"name": "node", "next_id": 1}, {"name": "edge", "next_id": 1}])


def downgrade() -> None:
    with op.batch_alter_table('track', schema=None) as batch_op:
        batch_op.drop_index('ix_track_parent')

    op.drop_table('track')
    with op.batch_alter_table('solution_node', schema=None) as batch_op:
        batch_op.drop_index('ix_solution_node_track')
        batch_op.drop_index('ix_solution_node_node_id')

    op.drop_table('solution_node')
    with op.batch_alter_table('solution_edge', schema=None) as batch_op:
        batch_op.drop_index('ix_solution_edge_edge_id')

    op.drop_table('solution_edge')
    with op.batch_alter_table('solution', schema=None) as batch_op:
        batch_op.drop_index('ix_solution_movie_id')

    op.drop_table('solution')
    with op.batch_alter_table('node_probability', schema=None) as batch_op:
        batch_op.drop_index('ix_node_probability_run_p')
        batch_op.drop_index('ix_node_probability_node_id')

    op.drop_table('node_probability')
    with op.batch_alter_table('node', schema=None) as batch_op:
        batch_op.drop_index('ix_node_movie_t')
        batch_op.drop_index('ix_node_hier_parent_id')

    op.drop_table('node')
    with op.batch_alter_table('edit', schema=None) as batch_op:
        batch_op.drop_index('ix_edit_movie_id')

    op.drop_table('edit')
    with op.batch_alter_table('edge_probability', schema=None) as batch_op:
        batch_op.drop_index('ix_edge_probability_run_p')
        batch_op.drop_index('ix_edge_probability_edge_id')

    op.drop_table('edge_probability')
    with op.batch_alter_table('edge', schema=None) as batch_op:
        batch_op.drop_index('ix_edge_target_id')
        batch_op.drop_index('ix_edge_source_id')
        batch_op.drop_index('ix_edge_run_t')
        batch_op.drop_index('ix_edge_movie_t')

    op.drop_table('edge')
    op.drop_table('calibration')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_movie_id'))

    op.drop_table('run')
    op.drop_table('movie')
    op.drop_table('id_block')
    op.drop_table('experiment')
