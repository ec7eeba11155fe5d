"""``python -m trackdb.cli``."""

from trackdb.cli import main

main()
