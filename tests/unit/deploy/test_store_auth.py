"""The embedded stores get credentials at start: no password on a command line, files 0600."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from deploy import services
from gleaner import credentials
from gleaner.settings import Settings


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(services.shutil, "which", lambda name, **_: f"/usr/bin/{name}")
    return Settings(state_dir=tmp_path / "state")


def test_redis_reads_its_password_from_a_private_file_not_argv(settings: Settings) -> None:
    argv = services.service(settings, "redis").argv()
    password = credentials.redis_password(settings)
    assert password and not any(password in arg for arg in argv)
    conf = Path(argv[1])
    assert conf.read_text().startswith(f"requirepass {password}\n")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert services.service(settings, "redis").argv()[1] == argv[1]  # same password on a re-run
    assert credentials.redis_password(settings) == password


def test_couchdb_gets_one_server_admin_and_the_guard(settings: Settings) -> None:
    home = settings.state_dir / "couchdb"
    home.mkdir(parents=True)
    (home / "config.json").write_text(json.dumps({"admins": {"mallory": "x"}, "couchdb": {"uuid": "u"}}))
    argv = services.service(settings, "couchdb").argv()
    user, password = credentials.couchdb_login(settings) or ("", "")
    assert argv[:3] == ["/usr/bin/node", "--require", str(services.POUCHDB_GUARD)]
    assert services.POUCHDB_GUARD.exists() and not any(password in arg for arg in argv)
    config = json.loads((home / "config.json").read_text())
    assert config["admins"] == {user: password} and config["couchdb"] == {"uuid": "u"}  # others' admins go
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
