"""The SQL schema: candidate graph, solutions, probabilities, tracks, edits and provenance.

This module is the schema's single description; Alembic revisions in ``migrations/`` are the only
way a database gets it. Typed columns only: masks are packed bitmasks inside their bbox and
embeddings raw float32 bytes, never pickles. Node and edge ids are allocated in blocks from
``id_block`` so parallel writers never collide.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import UserDefinedType

# BIGINT ids on PostgreSQL; on SQLite an INTEGER primary key is the 64-bit rowid itself, which
# spares a separate unique index on every bulk insert.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiment = Table(
    "experiment",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("meta", JSON),
)

movie = Table(
    "movie",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiment.id", ondelete="CASCADE")),
    Column("name", String(200), nullable=False, unique=True),
    Column("uri", Text),
    Column("ndim", Integer, nullable=False),  # spatial dimensions: 2 or 3
    Column("n_frames", Integer, nullable=False),
    Column("size_z", Integer),
    Column("size_y", Integer, nullable=False),
    Column("size_x", Integer, nullable=False),
    Column("spacing_z", Float),
    Column("spacing_y", Float, nullable=False, default=1.0),
    Column("spacing_x", Float, nullable=False, default=1.0),
    Column("time_interval", Float),
    Column("zarr_uri", Text),
    Column("current_solution_id", BigInteger),  # pointer; see trackdb.solutions
    Column("meta", JSON),
    Index("ix_movie_experiment_id", "experiment_id"),  # an experiment's movies (revision 0009)
)

run = Table(
    "run",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), index=True),
    Column("kind", String(40), nullable=False),  # import, inference, candidates, link, solve, ...
    Column("params", JSON),
    Column("code_version", String(40)),
    Column("status", String(20), nullable=False),  # running, succeeded, failed
    Column("message", Text),  # a failed run's error
    Column("summary", JSON),  # what a succeeded run reports about itself (revision 0005)
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("parent_run_id", Integer, ForeignKey("run.id")),
    # the process that began the run (revision 0008), so a dead one is told from a running one
    Column("pid", Integer),
    Column("host", String(255)),
    Column("process_started", Float),  # its start time (epoch seconds): a reused pid is another process
)

node = Table(
    "node",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=False),
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
    Column("t", Integer, nullable=False),
    Column("label", BigInteger, nullable=False),  # id in the source label image / forest
    Column("z", Float),
    Column("y", Float, nullable=False),
    Column("x", Float, nullable=False),
    Column("area", Integer, nullable=False),
    Column("bbox_z0", Integer),
    Column("bbox_y0", Integer, nullable=False),
    Column("bbox_x0", Integer, nullable=False),
    Column("bbox_z1", Integer),
    Column("bbox_y1", Integer, nullable=False),
    Column("bbox_x1", Integer, nullable=False),
    Column("hier_parent_id", BigInteger),  # containing candidate (forest), NULL for roots
    Column("threshold", Float),
    Column("score", Float),
    Column("max_prob", Float),
    Column("prev_z", Float),  # previous-frame centre the pixels vote for
    Column("prev_y", Float),
    Column("prev_x", Float),
    Column("mask", LargeBinary),  # np.packbits of the bbox mask, C order
    Column("embedding", LargeBinary),  # float32 little-endian
    Column("embedding_dim", Integer),
    Column("source", String(20), nullable=False),  # gt, labels, forest, cluster, edit
    UniqueConstraint("run_id", "t", "label"),
    Index("ix_node_movie_t", "movie_id", "t"),
    # partial (revision 0003): label-image candidates and forest roots have no parent
    Index(
        "ix_node_hier_parent_id",
        "hier_parent_id",
        sqlite_where=text("hier_parent_id IS NOT NULL"),
        postgresql_where=text("hier_parent_id IS NOT NULL"),
    ),
)

edge = Table(
    "edge",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=False),
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), nullable=False),
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
    Column("source_id", BigInteger, nullable=False),
    Column("target_id", BigInteger, nullable=False),
    Column("t", Integer, nullable=False),  # frame of the source
    Column("dt", Integer, nullable=False),
    Column("distance", Float),
    Column("iou", Float),
    Column("offset_vote", Float),
    Column("embedding_distance", Float),
    Column("cost", Float),
    Index("ix_edge_source_id", "source_id"),
    Index("ix_edge_target_id", "target_id"),
    Index("ix_edge_movie_t", "movie_id", "t"),
    Index("ix_edge_run_t", "run_id", "t"),
)

solution = Table(
    "solution",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), nullable=False),
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100)),
    Column("rank", Integer, nullable=False, default=0),  # 0 = MAP, 1..K-1 alternatives
    Column("objective", Float),
    Column("bound", Float),
    Column("gap", Float),
    Column("weight", Float),  # self-normalised weight among the top-K
    Column("status", String(20), nullable=False),
    Column("created_at", DateTime(timezone=True)),
    UniqueConstraint("run_id", "rank"),
    Index("ix_solution_movie_id", "movie_id"),
)

solution_layer = Table(
    "solution_layer",  # revision 0011: the solutions whose rows a solution reads (itself, and its base)
    metadata,
    Column("solution_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Column("layer_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_solution_layer_layer_id", "layer_id"),
)

solution_hidden = Table(
    "solution_hidden",  # revision 0011: base rows a delta solution drops or replaces
    metadata,
    Column("solution_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(5), primary_key=True),  # 'node', 'edge' or 'track'
    Column("item_id", BigInteger, primary_key=True),  # node id, edge id or track id
)

# The rows of each solution as written (revision 0011 renamed them): a full solution's every
# cell, link and track; a delta solution's new or changed ones. Read them through the views below.
solution_node_stored = Table(
    "solution_node_stored",
    metadata,
    Column("solution_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Column("node_id", BigInteger, primary_key=True),
    Column("track_id", BigInteger, nullable=False),  # CTC track the node belongs to
    Column("t", Integer, nullable=False),  # the node's frame (revision 0004): walks cut in the index
    Index("ix_solution_node_node_id", "node_id"),
    Index("ix_solution_node_track", "solution_id", "track_id", "t"),
    Index("ix_solution_node_frame", "solution_id", "t"),  # a window's cells (revision 0011)
)

solution_edge_stored = Table(
    "solution_edge_stored",
    metadata,
    Column("solution_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Column("edge_id", BigInteger, primary_key=True),
    Column("source_id", BigInteger, nullable=False),  # the link's endpoints, so lineage walks
    Column("target_id", BigInteger, nullable=False),  # never join ``edge`` (revision 0002)
    Index("ix_solution_edge_edge_id", "edge_id"),
    Index("ix_solution_edge_source", "solution_id", "source_id"),
    Index("ix_solution_edge_target", "solution_id", "target_id"),
)

track_stored = Table(
    "track_stored",
    metadata,
    Column("solution_id", Integer, ForeignKey("solution.id", ondelete="CASCADE"), primary_key=True),
    Column("track_id", BigInteger, primary_key=True),
    Column("start_t", Integer, nullable=False),
    Column("end_t", Integer, nullable=False),
    Column("parent_track_id", BigInteger),  # NULL (CTC parent 0) for a root
    Column("confidence_min", Float),
    Column("confidence_product", Float),
    Index("ix_track_parent", "solution_id", "parent_track_id"),
)

# Views (revision 0011, SQL in migrations/versions/0011_solution_delta.py): every solution's
# cells, links and tracks, a delta solution's resolved against its base. All readers use these;
# they are not in ``metadata`` (nothing writes them).
views = MetaData()

solution_node = Table(
    "solution_node",
    views,
    Column("solution_id", Integer),
    Column("node_id", BigInteger),
    Column("track_id", BigInteger),
    Column("t", Integer),
)

solution_edge = Table(
    "solution_edge",
    views,
    Column("solution_id", Integer),
    Column("edge_id", BigInteger),
    Column("source_id", BigInteger),
    Column("target_id", BigInteger),
)

track = Table(
    "track",
    views,
    Column("solution_id", Integer),
    Column("track_id", BigInteger),
    Column("start_t", Integer),
    Column("end_t", Integer),
    Column("parent_track_id", BigInteger),
    Column("confidence_min", Float),
    Column("confidence_product", Float),
)

edge_probability = Table(
    "edge_probability",
    metadata,
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
    Column("edge_id", BigInteger, primary_key=True),
    Column("p", Float, nullable=False),
    Column("method", String(20), nullable=False),
    Index("ix_edge_probability_run_p", "run_id", "p"),
    Index("ix_edge_probability_edge_id", "edge_id"),
)

node_probability = Table(
    "node_probability",
    metadata,
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
    Column("node_id", BigInteger, primary_key=True),
    Column("p", Float, nullable=False),
    Column("entropy", Float),  # daughter-wise entropy of the cell's outgoing options
    Column("method", String(20), nullable=False),
    Index("ix_node_probability_run_p", "run_id", "p"),
    Index("ix_node_probability_node_id", "node_id"),
)

calibration = Table(
    "calibration",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False),
    Column("method", String(20), nullable=False),
    Column("temperature", Float, nullable=False),
    Column("ece_before", Float),
    Column("ece_after", Float),
    Column("run_id", Integer, ForeignKey("run.id", ondelete="SET NULL")),
    Column("created_at", DateTime(timezone=True)),
    UniqueConstraint("name", "method"),
)

edit = Table(
    "edit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("author", String(100)),
    Column("kind", String(30), nullable=False),  # pin_node, forbid_node, pin_edge, forbid_edge, ...
    Column("payload", JSON),
    Column("t_start", Integer),  # dirty window
    Column("t_end", Integer),
    Column("run_id", Integer, ForeignKey("run.id", ondelete="SET NULL")),  # re-solve that used it
    Index("ix_edit_movie_id", "movie_id"),
)

cost_model = Table(
    "cost_model",  # revision 0006: a solve's final cost model (trackdb.store.cost_models)
    metadata,
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
    Column("n_nodes", Integer, nullable=False),
    Column("scalars", JSON, nullable=False),  # motion-model scalars (noise scales, growth, division shape)
    Column("params", JSON, nullable=False),  # the solve's CostParams
    Column("arrays", LargeBinary, nullable=False),  # numpy.savez: node_ids, shift, division_rate, node_cost
)


option_score = Table(
    "option_score",  # revision 0010: an uncertainty method's temperature-free scores (trackdb.store.option_scores)
    metadata,
    Column("run_id", Integer, ForeignKey("run.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(64), nullable=False),  # digest of the model, method and K they describe
    Column("method", String(20), nullable=False),
    Column("k", Integer, nullable=False),
    Column("info", JSON),  # the method's report (solvers.uncertainty.Uncertainty.info)
    Column("arrays", LargeBinary, nullable=False),  # numpy.savez: scores and max-marginals per option
    Index("ix_option_score_key", "key"),
)


class Untyped(UserDefinedType):
    """A column without type affinity on SQLite (declared BLOB): values keep their storage class,
    so numbers compare as numbers and text as text. Text elsewhere (see ``movie_condition``)."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "BLOB"


movie_condition = Table(
    "movie_condition",  # revision 0007: an experiment manifest's conditions, one row per movie and key
    metadata,
    Column("movie_id", Integer, ForeignKey("movie.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("value", Text().with_variant(Untyped(), "sqlite"), nullable=False),  # as written
    Column("value_num", Float),  # the number of a numeric condition, else NULL
    Index("ix_movie_condition_key", "key", "movie_id"),
)


id_block = Table(
    "id_block",
    metadata,
    Column("name", String(20), primary_key=True),  # 'node' or 'edge'
    Column("next_id", BigInteger, nullable=False),
)
