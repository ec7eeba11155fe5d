"""Typed access to the prediction store ``<group>/pred`` that :func:`inference.predict.predict_movie`
writes (its layout is documented there): open the group, get its arrays.

Zarr types a child lookup ``group[name]`` as "an array or a group"; these helpers check which,
so readers get a :class:`zarr.Array` (or a clear error when the store is not what they expect)
instead of a union to narrow at every use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import zarr


def child_group(parent: zarr.Group, name: str) -> zarr.Group:
    """``parent[name]``, which must be a group (KeyError if it is missing)."""
    import zarr

    node = parent[name]
    if not isinstance(node, zarr.Group):
        raise ValueError(f"{parent.store_path}/{name} is an array, expected a group")
    return node


def child_array(parent: zarr.Group, name: str) -> zarr.Array[Any]:
    """``parent[name]``, which must be an array (KeyError if it is missing)."""
    import zarr

    node = parent[name]
    if not isinstance(node, zarr.Array):
        raise ValueError(f"{parent.store_path}/{name} is a group, expected an array")
    return node


def open_pred(group_path: str | Path) -> zarr.Group:
    """The ``pred`` group of the Zarr group at ``group_path``, read-only."""
    import zarr

    return child_group(zarr.open_group(str(group_path), mode="r"), "pred")
