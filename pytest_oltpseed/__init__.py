"""pytest-oltpseed: realistic, FK-consistent OLTP data for PostgreSQL.

The package is a pytest plugin (``pytest_oltpseed.plugin``), a CLI
(``oltpseed``, ``python -m pytest_oltpseed``) and a library; all three sit on
the same core modules so that a rule lives in exactly one place.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__: str  # bound on first use, by __getattr__ below


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use.

    Every command and every pytest session imports this package; looking the
    version up here, not at import, spares them importlib.metadata and a scan
    of sys.path for the distribution (only ``--version`` and the template
    fingerprint ask for it).
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("pytest-oltpseed")
    except PackageNotFoundError:  # running from a checkout that is not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
