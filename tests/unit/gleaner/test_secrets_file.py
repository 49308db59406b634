"""The platform secret: created once, owner-only, the same for every process."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from gleaner.errors import SettingsError
from gleaner.secrets_file import load_or_create, platform_secret, platform_secret_path
from gleaner.settings import Settings


def test_created_once_with_owner_only_permissions(tmp_path):
    path = tmp_path / "secrets" / "platform.key"
    first = load_or_create(path)
    assert len(first) == 64 and load_or_create(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_loose_permissions_are_tightened(tmp_path):
    path = tmp_path / "k"
    path.write_text("a" * 64)
    os.chmod(path, 0o644)
    assert load_or_create(path) == "a" * 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_components_starting_together_all_get_the_same_secret(tmp_path):
    path = tmp_path / "secrets" / "platform.key"
    with ThreadPoolExecutor(16) as pool:
        values = set(pool.map(lambda _: load_or_create(path), range(64)))
    assert len(values) == 1
    assert [p.name for p in path.parent.iterdir()] == ["platform.key"]  # no temporary left behind


def test_the_setting_wins_and_must_be_long_enough(tmp_path):
    from_file = platform_secret(Settings(state_dir=tmp_path))
    assert platform_secret_path(Settings(state_dir=tmp_path)).exists() and len(from_file) == 32
    assert platform_secret(Settings(state_dir=tmp_path, platform_secret="z" * 40)) != from_file
    with pytest.raises(SettingsError):
        platform_secret(Settings(state_dir=tmp_path, platform_secret="short"))
