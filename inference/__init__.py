"""Models, tiled prediction to Zarr, clustering, the candidate forest and its features.

Nothing here knows about SQL; results are numpy arrays and frozen dataclasses from
:mod:`inference.types`.
"""
