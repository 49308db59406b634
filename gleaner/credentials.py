"""The operator's secrets in the state directory, and which one a client uses.

``gleaner up`` generates each secret once into ``<state_dir>/secrets/`` (the
directory 0700, every file 0600) and never rotates it on a re-run:

  couchdb.auth   "user:password" of the embedded CouchDB's server admin
  redis.auth     the embedded Redis's password
  admin.auth     the platform admin's "uuid:key" (admin REST routes, ``gleaner namespace|key``)
  guest.auth     the default namespace's "uuid:key" (also written to ~/.wskprops)

A setting always wins over a file (external services bring their own
credentials); a file is read only for a service at an embedded address.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gleaner.secrets_file import ensure_secret, read_secret
from gleaner.settings import GUEST_AUTH, Settings
from gleaner.settings_sections import StoreSettings

COUCHDB_USER = "gleaner"
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def new_secret() -> str:
    """A key in OpenWhisk's shape: 64 letters and digits (~380 bits)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(64))


def new_credential() -> str:
    """A fresh ``uuid:key`` (a namespace's or the admin's API key)."""
    return f"{uuid.uuid4()}:{new_secret()}"


def secrets_dir(settings: StoreSettings) -> Path:
    return settings.state_dir / "secrets"


def secret_file(settings: StoreSettings, name: str) -> Path:
    return secrets_dir(settings) / f"{name}.auth"


def _embedded(host: str | None) -> bool:
    return (host or "").lower() in _LOCAL_HOSTS


# --- stores ---------------------------------------------------------------------------------


def couchdb_login(settings: StoreSettings) -> tuple[str, str] | None:
    """(user, password) for CouchDB: the settings', else the embedded server admin's."""
    if settings.couchdb_user:
        return settings.couchdb_user, settings.couchdb_password
    if not _embedded(urlsplit(settings.couchdb_url).hostname):
        return None
    value = read_secret(secret_file(settings, "couchdb"))
    if value is None:
        return None
    user, _, password = value.partition(":")
    return user, password


def ensure_couchdb_login(settings: StoreSettings) -> tuple[str, str]:
    value = ensure_secret(secret_file(settings, "couchdb"), f"{COUCHDB_USER}:{secrets.token_urlsafe(32)}")
    user, _, password = value.partition(":")
    return user, password


def redis_password(settings: StoreSettings) -> str | None:
    """Redis's password: in the URL, the setting, else the embedded server's file."""
    url = urlsplit(settings.redis_url)
    if url.password:
        return unquote(url.password)
    if settings.redis_password:
        return settings.redis_password
    if url.scheme != "redis" or not _embedded(url.hostname):
        return None
    return read_secret(secret_file(settings, "redis"))


def ensure_redis_password(settings: StoreSettings) -> str:
    return ensure_secret(secret_file(settings, "redis"), secrets.token_urlsafe(32))


# --- platform keys --------------------------------------------------------------------------


def admin_credential(settings: Settings) -> str | None:
    return settings.admin_auth or read_secret(secret_file(settings.stores, "admin"))


def ensure_admin_credential(settings: Settings) -> str:
    if settings.admin_auth:
        return settings.admin_auth
    return ensure_secret(secret_file(settings.stores, "admin"), new_credential())


def guest_credential(settings: Settings) -> str | None:
    """The default namespace's key: set, OpenWhisk's public one (opt-in), else generated."""
    if settings.guest_auth:
        return settings.guest_auth
    if settings.public_guest_key:
        return GUEST_AUTH
    return read_secret(secret_file(settings.stores, "guest"))


def ensure_guest_credential(settings: Settings) -> str:
    if settings.guest_auth or settings.public_guest_key:
        return settings.guest_auth or GUEST_AUTH
    return ensure_secret(secret_file(settings.stores, "guest"), new_credential())
