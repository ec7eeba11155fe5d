"""The layers of docs/architecture.md, checked on every module's imports.

``solvers`` and ``inference`` are plain-array rooms that import nothing of ``trackdb``; inside
``trackdb``, ``store`` is the only package that speaks SQL, ``io`` and ``stages`` build on it,
and ``review`` (the review page) and ``cli`` on all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> first-party packages it must not import
FORBIDDEN = {
    "solvers": ("trackdb", "inference", "synthetic"),
    "inference": ("trackdb", "synthetic"),
    "synthetic": ("trackdb", "solvers", "inference"),
    "trackdb/store": ("trackdb.io", "trackdb.stages", "trackdb.experiment", "trackdb.review", "trackdb.cli"),
    "trackdb/io": ("trackdb.stages", "trackdb.experiment", "trackdb.review", "trackdb.cli"),
    "trackdb/stages": ("trackdb.experiment", "trackdb.review", "trackdb.cli"),
    "trackdb/experiment": ("trackdb.review", "trackdb.cli"),  # the plate engine: Dask tasks over stages
    "trackdb/review": ("trackdb.cli",),  # the review page: a layer above stages, like cli
}
# only the store speaks SQL
NO_SQL = ("trackdb/io", "trackdb/stages", "trackdb/experiment", "trackdb/review", "trackdb/cli")
SQL_MODULES = ("sqlalchemy", "alembic", "psycopg", "trackdb.store.schema")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _hits(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_downwards(package: str) -> None:
    assert modules(package), f"no modules under {package}"
    bad = {str(p.relative_to(ROOT)): _hits(imports(p), FORBIDDEN[package]) for p in modules(package)}
    assert {k: v for k, v in bad.items() if v} == {}


@pytest.mark.parametrize("package", NO_SQL)
def test_only_the_store_holds_sql(package: str) -> None:
    bad = {str(p.relative_to(ROOT)): _hits(imports(p), SQL_MODULES) for p in modules(package)}
    assert {k: v for k, v in bad.items() if v} == {}
