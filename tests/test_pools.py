"""Value pools: one fixed drawing order, and kept on disk between starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_oltpseed.data.factory import Context
from pytest_oltpseed.data.pools import POOL_SIZES, Pools, pools


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OLTPSEED_HOME", str(tmp_path))
    pools.cache_clear()
    yield tmp_path
    pools.cache_clear()


def _values(drawn: Pools) -> list[tuple[str, ...]]:
    return [getattr(drawn, name) for name, _, _ in POOL_SIZES]


def test_pools_are_kept_on_disk_and_read_back_alike(home: Path) -> None:
    drawn = Pools(7)
    files = list((home / "cache").glob("pools-*seed7.json"))
    assert len(files) == 1
    assert _values(Pools(7)) == _values(drawn)  # read back from the file
    assert _values(Pools(8)) != _values(drawn)  # keyed by seed
    assert all(
        0 < len(v) <= size
        for v, (_, _, size) in zip(_values(drawn), POOL_SIZES, strict=True)
    )


def test_a_damaged_cache_is_drawn_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn = _values(Pools(3))
    (path,) = (home / "cache").glob("pools-*seed3.json")
    for damage in ('{"first_names": [1, 2]}', "not json", '{"first_names": []}'):
        path.write_text(damage)
        assert _values(Pools(3)) == drawn
    blocked = home / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("OLTPSEED_HOME", str(blocked))  # cannot hold a cache
    assert _values(Pools(3)) == drawn  # only slower, never an error


def test_pool_values_do_not_depend_on_which_pool_is_used_first(home: Path) -> None:
    """Drawn lazily, the pool touched first took Faker's first draws: a
    hospital doctor's name differed when retail's suppliers (last names
    first) were generated earlier in the same process."""
    ctx = Context(None, seed=5)
    ctx.choice(ctx.pools.last_names)  # as retail's suppliers do first
    surnames_after_retail = ctx.pools.last_names
    pools.cache_clear()
    (home / "cache").rename(home / "old-cache")
    fresh = Context(None, seed=5)
    fresh.person_name()  # as hospital's doctors do first
    assert fresh.pools.last_names == surnames_after_retail


def test_an_account_without_a_home_draws_without_a_cache(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container's bare uid (no HOME, no passwd entry): ``Path.home()``
    raises; the pools are drawn as usual and nothing is cached."""
    expected = _values(Pools(5))
    monkeypatch.delenv("OLTPSEED_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert _values(Pools(5)) == expected
