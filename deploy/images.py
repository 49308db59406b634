"""Build Gleaner's container images without any registry.

The base is a ``debootstrap --variant=minbase`` Debian rootfs with python3,
cached as a tarball and ``docker import``-ed; every other image is a
``docker build`` layer on top of it (``FROM`` never needs a pull).
Each built image carries a label with the sha256 of its inputs and is rebuilt
only when they change, so editing the action proxy rebuilds the runtime.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import io
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors
from tqdm import tqdm

from deploy.common import PartStatus, log_file, log_tail
from deploy.services import docker_client
from gleaner.errors import StackError
from gleaner.settings import Settings

PART = "image"
BASE_IMAGE = "gleaner/python:base"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "ca-certificates")
SOURCE_LABEL = "gleaner.source-sha256"
# `docker import` keeps no config; give the base what a Debian image normally has.
BASE_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
]


def rootfs_cache(settings: Settings) -> Path:
    return settings.state_dir / "cache" / f"rootfs-{SUITE}-python3.tar"


def runtime_dockerfile() -> bytes:
    return (importlib.resources.files("deploy") / "images" / "python3" / "Dockerfile").read_bytes()


def actionproxy_source() -> bytes:
    """The in-container action proxy shipped in the ``invoker_agent.runtime`` package."""
    ref = importlib.resources.files("invoker_agent.runtime") / "actionproxy.py"
    try:
        return ref.read_bytes()
    except OSError as exc:
        raise StackError(PART, f"action proxy not found at {ref}: {exc}") from exc


def source_digest(dockerfile_text: str | bytes, context_files: Mapping[str, bytes]) -> str:
    """sha256 over the Dockerfile and the context files (names and contents, sorted)."""
    h = hashlib.sha256()
    h.update(dockerfile_text.encode() if isinstance(dockerfile_text, str) else dockerfile_text)
    for name in sorted(context_files):
        h.update(b"\0" + name.encode() + b"\0")
        h.update(context_files[name])
    return h.hexdigest()


def _bar(progress: bool, desc: str, total: int | None = None, unit: str = "step") -> tqdm[Any]:
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=True, dynamic_ncols=True)


# --- base rootfs ---------------------------------------------------------------


def build_rootfs_tar(settings: Settings, *, progress: bool = True) -> Path:
    """debootstrap a minimal Debian with python3 and cache it as a tarball (once)."""
    out = rootfs_cache(settings)
    if out.exists():
        return out
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if debootstrap is None:
        raise StackError(PART, "debootstrap not installed; run deploy/setup.sh")
    work = out.with_suffix(".d")
    shutil.rmtree(work, ignore_errors=True)  # a half-done earlier attempt
    work.parent.mkdir(parents=True, exist_ok=True)
    log = log_file(settings, "debootstrap")
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        SUITE,
        str(work),
        MIRROR,
    ]
    try:
        with log.open("wb") as fh, _bar(progress, "debootstrap") as bar:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert proc.stdout is not None
            for raw in proc.stdout:
                fh.write(raw)
                line = raw.decode("utf-8", "replace").strip()
                if line.startswith("I: "):
                    bar.set_postfix_str(line[3:60], refresh=False)
                bar.update(1)
            code = proc.wait()
        if code != 0:
            raise StackError(PART, f"debootstrap exited with {code}; log {log}:\n{log_tail(log)}")
        # Package downloads and apt lists are dead weight in an image.
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (work / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        partial = out.with_suffix(".tar.part")
        tar = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(work), "-cf", str(partial), "."],
            capture_output=True,
            text=True,
        )
        if tar.returncode != 0:
            raise StackError(PART, f"tar of the rootfs failed: {tar.stderr.strip()[-2000:]}")
        partial.rename(out)  # only a complete tarball ever has the cache name
    except OSError as exc:
        raise StackError(PART, f"cannot build the base rootfs: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _image(client: docker.DockerClient, tag: str) -> Any | None:
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def ensure_base_image(settings: Settings, *, progress: bool = True) -> str:
    """``docker import`` the cached rootfs as ``gleaner/python:base`` unless present."""
    client = docker_client(settings, timeout=900)
    try:
        if _image(client, BASE_IMAGE) is not None:
            return BASE_IMAGE
        tar = build_rootfs_tar(settings, progress=progress)
        repo, _, tag = BASE_IMAGE.rpartition(":")
        with _bar(progress, "docker import", total=1) as bar:
            client.api.import_image_from_file(str(tar), repository=repo, tag=tag, changes=BASE_CHANGES)
            bar.update(1)
        if _image(client, BASE_IMAGE) is None:
            raise StackError(PART, f"docker import of {tar} did not produce {BASE_IMAGE}")
        return BASE_IMAGE
    except docker.errors.DockerException as exc:
        raise StackError(PART, f"docker import of the base failed: {exc}") from exc
    finally:
        client.close()


# --- docker build ------------------------------------------------------------------


def _context_tar(dockerfile_text: str | bytes, files: Mapping[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    now = time.time()
    dockerfile = dockerfile_text.encode() if isinstance(dockerfile_text, str) else dockerfile_text
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile, **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(now)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _build_events(
    client: docker.DockerClient, tag: str, context: io.BytesIO, digest: str, nocache: bool
) -> Iterator[dict[str, Any]]:
    events: Iterator[dict[str, Any]] = client.api.build(
        fileobj=context,
        custom_context=True,
        tag=tag,
        labels={SOURCE_LABEL: digest},
        rm=True,
        forcerm=True,
        nocache=nocache,
        pull=False,  # no registry here; FROM must name a local image
        decode=True,
    )
    return events


def _build(
    settings: Settings,
    tag: str,
    dockerfile_text: str | bytes,
    files: Mapping[str, bytes],
    *,
    rebuild: bool,
    progress: bool,
) -> str:
    digest = source_digest(dockerfile_text, files)
    client = docker_client(settings, timeout=900)
    log = log_file(settings, f"build-{tag.replace('/', '_').replace(':', '_')}")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = _image(client, tag)
        if current is not None and not rebuild and (current.labels or {}).get(SOURCE_LABEL) == digest:
            return tag
        with log.open("w") as fh, _bar(progress, f"build {tag}") as bar:
            for event in _build_events(client, tag, _context_tar(dockerfile_text, files), digest, rebuild):
                text = str(event.get("stream", "") or event.get("status", ""))
                fh.write(text)
                if text.startswith("Step "):
                    step, _, total = text.split()[1].partition("/")
                    with contextlib.suppress(ValueError):
                        bar.total = int(total)
                        bar.n = int(step)
                        bar.refresh()
                if "error" in event:
                    fh.write(f"ERROR: {event['error']}\n")
                    fh.flush()
                    raise StackError(PART, f"docker build of {tag} failed: {event['error']}\n{log_tail(log)}")
            if bar.total:
                bar.n = bar.total
                bar.refresh()
        if current is not None:
            _drop_replaced(client, tag, current.id)
    except docker.errors.DockerException as exc:
        raise StackError(PART, f"docker build of {tag} failed: {exc}\n{log_tail(log)}") from exc
    finally:
        client.close()
    return tag


def _drop_replaced(client: docker.DockerClient, tag: str, old_id: str) -> None:
    """Remove the image a rebuild replaced, so rebuilds do not pile up dangling
    images; one still used by a container stays (removal is refused)."""
    new = _image(client, tag)
    if new is not None and new.id != old_id:
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(old_id)


def ensure_runtime_image(settings: Settings, *, rebuild: bool = False, progress: bool = True) -> str:
    """Make ``settings.runtime_image`` exist and match the current action proxy.

    Steps, each skipped when its output exists: debootstrap the rootfs tarball
    (about 45 s), ``docker import`` it as the base, ``docker build`` the proxy
    layer. ``rebuild`` forces the last step; delete the cached tarball under
    ``state_dir/cache`` to redo the rootfs.
    """
    files = {"actionproxy.py": actionproxy_source()}
    dockerfile = runtime_dockerfile()
    if not rebuild and image_is_current(settings, settings.runtime_image, dockerfile, files):
        return settings.runtime_image
    ensure_base_image(settings, progress=progress)
    return _build(settings, settings.runtime_image, dockerfile, files, rebuild=rebuild, progress=progress)


def image_is_current(
    settings: Settings, tag: str, dockerfile_text: str | bytes, context_files: Mapping[str, bytes]
) -> bool:
    client = docker_client(settings, timeout=30)
    try:
        image = _image(client, tag)
    except docker.errors.DockerException as exc:
        raise StackError(PART, f"cannot inspect {tag}: {exc}") from exc
    finally:
        client.close()
    if image is None:
        return False
    return bool((image.labels or {}).get(SOURCE_LABEL) == source_digest(dockerfile_text, context_files))


def image_status(settings: Settings) -> PartStatus:
    tag = settings.runtime_image
    try:
        files = {"actionproxy.py": actionproxy_source()}
        current = image_is_current(settings, tag, runtime_dockerfile(), files)
    except StackError as exc:
        return PartStatus(PART, "down", tag, None, exc.reason.splitlines()[0])
    if current:
        return PartStatus(PART, "up", tag, None, "current")
    return PartStatus(PART, "down", tag, None, "missing or stale; `gleaner up` builds it")
