"""``python -m pytest_oltpseed`` runs the same CLI as ``oltpseed``."""

from pytest_oltpseed.cli import main

main()
