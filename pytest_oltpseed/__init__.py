"""pytest-oltpseed: realistic, FK-consistent OLTP data for PostgreSQL.

The package is a pytest plugin (``pytest_oltpseed.plugin``), a CLI
(``oltpseed``, ``python -m pytest_oltpseed``) and a library; all three sit on
the same core modules so that a rule lives in exactly one place.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pytest-oltpseed")
except PackageNotFoundError:  # running from a checkout that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
