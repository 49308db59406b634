"""The embedded stack as a whole: ``up``, ``down`` and ``status``.

``up`` order: Docker, Kafka (+ topics), Redis, CouchDB (+ databases and
indexes), the runtime image, then Gleaner's components, and finally the wsk
client config. Every step reuses what is already healthy, so ``up`` is
idempotent and a second call takes about a second.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker.errors

from deploy import images, procs, services, supervisor
from deploy.broker_loss import after_broker_loss
from deploy.common import PartStatus
from gleaner.container_labels import INVOKER_LABEL, MANAGED_LABEL
from gleaner.couchdb import CouchDB, ensure_schema
from gleaner.credentials import ensure_admin_credential, ensure_guest_credential
from gleaner.errors import GleanerError, StackError
from gleaner.settings import GUEST_AUTH, Settings
from gleaner.subjects import ensure_admin, ensure_subject, migrate_plain_subjects, revoke_uuid

BEFORE_REDIS = ("docker", services.S3STORE, "kafka")  # in service_names' order: the store, then Tansu


def wskprops_path() -> Path:
    """Where wsk reads its config: ``$WSK_CONFIG_FILE``, else ``~/.wskprops``."""
    override = os.environ.get("WSK_CONFIG_FILE")
    return Path(override).expanduser() if override else Path.home() / ".wskprops"


def merge_wskprops(text: str, values: dict[str, str]) -> str:
    """Set ``KEY=value`` lines for ``values`` in a wskprops text, keeping every
    other line (other keys, comments) in place; duplicates of our keys go."""
    out: list[str] = []
    done: set[str] = set()
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line else ""
        if key in values:
            if key not in done:
                out.append(f"{key}={values[key]}")
                done.add(key)
            continue
        out.append(line)
    out.extend(f"{key}={value}" for key, value in values.items() if key not in done)
    return "\n".join(out) + "\n"


def write_wskprops(path: Path, apihost: str, auth: str) -> Path:
    """Point wsk (and ``gleaner`` client commands) at this stack."""
    try:
        old = path.read_text()
    except FileNotFoundError:
        old = ""
    new = merge_wskprops(old, {"APIHOST": apihost, "AUTH": auth})
    if new != old:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        # It holds an API key: readable by its owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new)
        tmp.replace(path)
    return path


def ensure_keys(settings: Settings) -> str:
    """The default namespace's key and the admin's: generated once into the state directory
    (0600), never rotated by a re-run, and stored hashed in CouchDB (an earlier version's
    plain-text keys re-hashed first). Return the guest key."""
    guest = ensure_guest_credential(settings)
    admin = ensure_admin_credential(settings)
    db = CouchDB(settings.stores)
    try:
        migrate_plain_subjects(db)
        if guest != GUEST_AUTH:  # OpenWhisk's published key, from an earlier version, stops
            revoke_uuid(db, GUEST_AUTH.partition(":")[0])
        ensure_subject(db, settings.guest_namespace, guest)
        ensure_admin(db, admin)
    finally:
        db.close()
    return guest


def up(settings: Settings, *, progress: bool = True, components: bool = True) -> list[PartStatus]:
    """Start (or reuse) every part; raise :class:`StackError` naming the first
    part that cannot be made healthy. (``gleaner up --demo`` runs the demo after it, in the CLI.)"""
    first = [name for name in services.service_names(settings) if name in BEFORE_REDIS]
    parts = [services.start(settings, name) for name in first]
    kafka = parts[-1]
    services.ensure_platform_topics(settings)
    parts.append(services.start(settings, "redis"))
    if kafka.detail.startswith("started") and settings.kafka_storage == "memory":
        # A broker started without its log: what the gateway accepted before is sent again.
        after_broker_loss(settings)
    parts.append(services.start(settings, "couchdb"))
    try:
        ensure_schema(settings.stores)
        guest = ensure_keys(settings)
    except GleanerError as exc:
        raise StackError("couchdb", f"cannot create databases, indexes and keys: {exc}") from exc
    began = time.monotonic()
    tag = images.ensure_runtime_image(settings, progress=progress)
    parts.append(PartStatus("image", "up", tag, None, f"ready in {time.monotonic() - began:.1f} s"))
    if components:
        parts.extend(procs.start_components(settings))
        parts.append(procs.start_supervisor(settings))
    write_wskprops(wskprops_path(), settings.api_host, guest)
    return parts


def remove_managed_containers(settings: Settings) -> int:
    """Remove this invoker's containers (labelled ``gleaner.managed=true`` and
    ``gleaner.invoker=<invoker_id>``); other invokers on a shared engine keep
    theirs. Return how many were removed."""
    if not services.healthy(settings, "docker"):
        return 0
    labels = [f"{MANAGED_LABEL}=true", f"{INVOKER_LABEL}={settings.invoker_id}"]
    client = services.docker_client(settings, timeout=30)
    removed = 0
    try:
        for container in client.containers.list(all=True, filters={"label": labels}):
            with contextlib.suppress(docker.errors.NotFound):  # gone meanwhile
                container.remove(force=True)
                removed += 1
    except docker.errors.DockerException as exc:
        raise StackError("docker", f"cannot remove Gleaner's containers: {exc}") from exc
    finally:
        client.close()
    return removed


def down(settings: Settings, *, docker: bool = False) -> None:
    """Stop what this project started: components, their containers, CouchDB,
    Redis, Kafka; dockerd only with ``docker=True`` (and only if ours)."""
    procs.stop_components(settings)
    remove_managed_containers(settings)
    for part in ("couchdb", "redis", "kafka", services.S3STORE):
        services.stop(settings, part)
    if docker:
        services.stop(settings, "docker")


def status(settings: Settings) -> list[PartStatus]:
    restarts = supervisor.read_state(settings)
    parts = [_with_restarts(services.status(settings, p), restarts) for p in services.service_names(settings)]
    parts.append(images.image_status(settings))
    parts.extend(procs.component_status(settings, name, restarts) for name in procs.component_names(settings))
    parts.append(procs.component_status(settings, procs.SUPERVISOR))
    return parts


def _with_restarts(part: PartStatus, restarts: dict[str, Any]) -> PartStatus:
    seen = restarts.get(part.part)
    if not isinstance(seen, dict) or not seen.get("restarts"):
        return part
    note = f"restarted {seen['restarts']}x, last crash {seen.get('last_exit') or '?'}"
    return PartStatus(part.part, part.state, part.address, part.pid, f"{part.detail}; {note}")


def format_status(parts: Sequence[PartStatus]) -> str:
    """A plain table, one part a line, for the CLI."""
    header = ("PART", "STATE", "ADDRESS", "PID", "DETAIL")
    rows = [
        (p.part, p.state, p.address, str(p.pid) if p.pid is not None else "-", p.detail.split("\n", 1)[0])
        for p in parts
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    lines = []
    for row in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    return "\n".join(lines)
