"""Top-level conftest: pytester for the plugin's own tests of downstream suites."""

pytest_plugins = ["pytester"]
