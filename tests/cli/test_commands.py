"""Every command is reachable however trackdb is started."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from trackdb.cli import cli

COMMANDS = {
    "init",
    "db",
    "movies",
    "stats",
    "lineage",
    "query",
    "runs",
    "import-ctc",
    "export-ctc",
    "evaluate",
    "export-geff",
    "export-parquet",
    "export-tracks",
    "candidates",
    "link",
    "solve",
    "track",
    "train",
    "predict",
    "candidates-from-predictions",
    "uncertainty",
    "uncertain",
    "calibrate",
    "edit",
    "edits",
    "resolve",
    "review",
    "plot",
    "experiment",
}


def listed(help_text: str) -> set[str]:
    block = help_text.split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z-]*)\s", block, re.M)}


def test_group_registers_every_command() -> None:
    assert set(cli.commands) == COMMANDS


@pytest.mark.parametrize("module", ["trackdb", "trackdb.cli"])
def test_python_m_lists_every_command(module: str) -> None:
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert listed(out.stdout) == COMMANDS
