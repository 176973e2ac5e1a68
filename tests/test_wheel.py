"""The built wheel carries the SQL: install it outside the checkout and run init-db."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.conftest import tables_in

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs_init_db(
    tmp_path: Path, database: str, cli_env: dict[str, str]
) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("pytest_oltpseed-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Dependencies come from this environment; the package only from the wheel
    # (a path added by a .pth file does not run that directory's own .pth files,
    # so the checkout's editable hook stays out).
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            site,
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    where = subprocess.run(
        [
            python,
            "-c",
            "import pytest_oltpseed, pathlib; "
            "print(pathlib.Path(pytest_oltpseed.__file__).parent)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert where.startswith(str(env_dir))
    assert (Path(where) / "sql" / "hospital" / "01_schema.sql").is_file()
    assert (Path(where) / "sql" / "retail" / "99_drop_all.sql").is_file()

    result = subprocess.run(
        [python, "-m", "pytest_oltpseed", "init-db", "--dsn", database],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli_env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {"pacientes", "sale_items"} <= tables_in(database)
