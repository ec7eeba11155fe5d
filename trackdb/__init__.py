"""trackdb: a cell segmentation, tracking and lineage store."""

__version__ = "0.1.0"
