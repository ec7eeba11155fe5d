"""``python -m trackdb``."""

from trackdb.cli import main

main()
