"""A random secret kept in a file readable by its owner only, created once.

Several components start at the same moment and each may be the first to
need the secret, so creation must not race: the value is written to a
private temporary file and hard-linked into place, which fails when another
process got there first; then everyone reads the one file that won.

The platform secret (``<state_dir>/secrets/platform.key``) signs Gleaner's own
Kafka events and derives stable, unguessable payload reference ids. A
multi-host deployment sets ``GLEANER_PLATFORM_SECRET`` on every host instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from gleaner.errors import SettingsError
from gleaner.settings_sections import KafkaSettings

PLATFORM_SECRET_BYTES = 32
_MIN_SECRET_CHARS = 32


def platform_secret_path(settings: KafkaSettings) -> Path:
    return settings.state_dir / "secrets" / "platform.key"


def read_secret(path: Path) -> str | None:
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from exc
    return value or None


def write_secret(path: Path, value: str) -> None:
    """Write (or replace) ``value`` readable by its owner only (the directory too)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    tmp.replace(path)


def ensure_secret(path: Path, make: str) -> str:
    """The secret in ``path``; ``make`` is written first when there is none (never
    rotated). Safe when several processes call it at once: all get the same value."""
    existing = read_secret(path)
    if existing is not None:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(make + "\n")
        with contextlib.suppress(FileExistsError):  # another process won: use its value
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    value = read_secret(path)
    if value is None:
        raise SettingsError(f"{path} is empty")
    return value


def load_or_create(path: Path, nbytes: int = PLATFORM_SECRET_BYTES) -> str:
    """A random hex secret of ``nbytes`` in ``path``, created once."""
    return ensure_secret(path, secrets.token_hex(nbytes))


def platform_secret(settings: KafkaSettings) -> bytes:
    """The key of every platform HMAC: the setting, else the state directory's file."""
    value = settings.platform_secret or load_or_create(platform_secret_path(settings))
    if len(value) < _MIN_SECRET_CHARS:
        raise SettingsError(f"the platform secret must be at least {_MIN_SECRET_CHARS} characters")
    # Hashed once, so any string of enough entropy is a 32-byte key.
    return hashlib.sha256(value.encode()).digest()
