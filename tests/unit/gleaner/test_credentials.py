"""State-directory secrets and the admin CLI's argument handling."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gleaner import credentials, subjects
from gleaner.cli import admin
from gleaner.cli.main import build_parser
from gleaner.errors import BadRequest, GleanerError
from gleaner.settings import GUEST_AUTH, Settings

UUID1 = "00000000-0000-0000-0000-000000000001"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_credentials_are_openwhisk_shaped_and_distinct() -> None:
    a, b = credentials.new_credential(), credentials.new_credential()
    assert a != b and subjects.parse_credential(a) is not None and len(a.partition(":")[2]) == 64


def test_a_secret_is_generated_once_0600_and_never_rotated(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    first = credentials.ensure_guest_credential(s)
    path = credentials.secret_file(s, "guest")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert credentials.ensure_guest_credential(s) == first  # a re-run keeps it
    path.chmod(0o644)
    assert credentials.ensure_guest_credential(s) == first and mode(path) == 0o600
    assert first != GUEST_AUTH


def test_guest_key_setting_and_public_opt_in(tmp_path: Path) -> None:
    assert credentials.guest_credential(Settings(state_dir=tmp_path, public_guest_key=True)) == GUEST_AUTH
    assert credentials.guest_credential(Settings(state_dir=tmp_path, guest_auth="u:k")) == "u:k"
    assert credentials.guest_credential(Settings(state_dir=tmp_path)) is None


def test_admin_and_guest_keys_differ(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    assert credentials.ensure_admin_credential(s) != credentials.ensure_guest_credential(s)
    assert credentials.admin_credential(Settings(state_dir=tmp_path, admin_auth="a:b")) == "a:b"


def test_couchdb_login_settings_win_and_files_serve_only_embedded_hosts(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    assert credentials.couchdb_login(s) is None
    user, password = credentials.ensure_couchdb_login(s)
    assert user == "gleaner" and len(password) > 30
    assert credentials.couchdb_login(s) == (user, password)
    assert credentials.couchdb_login(
        Settings(state_dir=tmp_path, couchdb_user="op", couchdb_password="pw")
    ) == (
        "op",
        "pw",
    )
    external = Settings(state_dir=tmp_path, couchdb_url="https://couch.example:6984")
    assert credentials.couchdb_login(external) is None  # our embedded secret never leaves the machine


def test_redis_password_from_url_setting_or_file(tmp_path: Path) -> None:
    s = Settings(state_dir=tmp_path)
    assert credentials.redis_password(s) is None
    made = credentials.ensure_redis_password(s)
    assert credentials.redis_password(s) == made
    assert credentials.redis_password(Settings(state_dir=tmp_path, redis_password="set")) == "set"
    in_url = Settings(state_dir=tmp_path, redis_url="redis://:p%40ss@127.0.0.1:6379/0")
    assert credentials.redis_password(in_url) == "p@ss"
    assert credentials.redis_password(Settings(state_dir=tmp_path, redis_url="redis://cache:6379/0")) is None


def test_secrets_are_masked_in_printed_settings() -> None:
    masked = Settings(admin_auth="a:b", redis_password="p", guest_auth="g:k").masked()
    assert masked["admin_auth"] == masked["redis_password"] == masked["guest_auth"] == "***"


# --- the admin CLI ------------------------------------------------------------------------------


def test_a_key_is_named_by_uuid_or_pasted_whole() -> None:
    assert admin.key_uuid(UUID1) == UUID1
    assert admin.key_uuid(f"{UUID1.upper()}:secret") == UUID1
    with pytest.raises(BadRequest):
        admin.key_uuid("guest")


def test_rotate_without_a_uuid_needs_exactly_one_key() -> None:
    assert admin.key_to_rotate([{"uuid": UUID1}], "ns", None) == UUID1
    assert admin.key_to_rotate([], "ns", UUID1) == UUID1
    with pytest.raises(BadRequest, match="has no key"):
        admin.key_to_rotate([], "ns", None)
    with pytest.raises(BadRequest, match="name the one"):
        admin.key_to_rotate([{"uuid": UUID1}, {"uuid": "x"}], "ns", None)


def test_the_admin_key_never_comes_from_wskprops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    props = tmp_path / "wskprops"
    props.write_text(f"APIHOST=http://gw:3233\nAUTH={UUID1}:tenant\n")
    monkeypatch.setenv("WSK_CONFIG_FILE", str(props))
    s = Settings(state_dir=tmp_path)
    with pytest.raises(GleanerError, match="no admin key"):
        admin.admin_target(s, None, None)
    made = credentials.ensure_admin_credential(s)
    target = admin.admin_target(s, None, None)
    assert target.auth == made and target.apihost == "http://gw:3233"
    assert admin.admin_target(s, "localhost:1", "u:k").apihost == "https://localhost:1"


def test_admin_paths_quote_and_check_the_namespace() -> None:
    assert admin._path("a.b", "keys", UUID1) == f"/api/v1/admin/namespaces/a.b/keys/{UUID1}"
    with pytest.raises(BadRequest):
        admin._path("../x")


@pytest.mark.parametrize(
    ("argv", "verb"),
    [
        (["namespace", "create", "alice"], "create"),
        (["namespace", "list"], "list"),
        (["namespace", "delete", "alice"], "delete"),
        (["key", "create", "alice"], "create"),
        (["key", "list", "alice"], "list"),
        (["key", "rotate", "alice"], "rotate"),
        (["key", "rotate", "alice", UUID1, "--auth", "a:b"], "rotate"),
        (["key", "revoke", "alice", UUID1], "revoke"),
    ],
)
def test_admin_commands_parse(argv: list[str], verb: str) -> None:
    args = build_parser().parse_args(argv)
    assert args.verb == verb and callable(args.func)


def test_revoke_needs_a_uuid() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["key", "revoke", "alice"])
