"""The workload runtime image: Gleaner's python:3 runtime plus the sample workloads'
libraries (numpy, OpenCV, scikit-learn + joblib, LightGBM, pyaes) and the
VideoAnalytics digit classifier, built without any registry.

Which tag. The layer goes on the default runtime tag itself (``settings.runtime_image``,
``gleaner/python:3``), so every ``python:3`` action can import numpy, cv2 or lightgbm
and nothing else needs configuring; one image per invoker is also what the container
pool supports. Two things make that safe next to ``deploy.images.ensure_runtime_image``,
which rebuilds that tag whenever its ``gleaner.source-sha256`` label differs from the
action proxy's digest:

- the workload image carries the *runtime's* digest in that label (and its own digest
  in ``gleaner.workload-sha256``), so ``ensure_runtime_image`` sees it as current and
  leaves it alone; when the proxy changes it rebuilds the plain runtime and the next
  :func:`ensure_workload_image` puts the workload layer back on top (call it after
  ``ensure_runtime_image``, as ``gleaner up`` should);
- the layer is built ``FROM`` a proxy-only copy of the runtime kept under its own tag
  (``gleaner/python:3-proxy``), never ``FROM`` the tag it replaces, so rebuilds do not
  stack layers on layers.

Wheels are downloaded on the host (``pip download --only-binary=:all:`` for CPython
3.11 manylinux x86_64, up to glibc 2.36 = Debian bookworm; pyaes has no wheel and is
built into one with ``pip wheel``) into ``state_dir/cache/wheels``, with libgomp1's
.deb from apt (LightGBM links it). The Dockerfile installs them in a throw-away stage
by running pip from its own wheel (minbase python3 has no pip) and copies the
installed tree into the final stage, so the ~130 MB of wheels never become a layer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.resources
import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from tqdm import tqdm

from deploy import images
from deploy.common import log_file, log_tail
from deploy.services import docker_client
from gleaner.errors import StackError
from gleaner.settings import Settings

PART = "workload-image"
WORKLOAD_LABEL = "gleaner.workload-sha256"
PYTHON_VERSION = "3.11"
# Debian bookworm has glibc 2.36; pip (<24) does not expand manylinux_2_X tags to the
# older ones by itself, so every compatible platform tag is named.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
)
SDIST_ONLY = frozenset({"pyaes"})  # pure Python, no wheel on PyPI: built on the host
DIGITS_SOURCE = Path(__file__).parent / "video_analytics" / "recognition" / "digits.py"


def _image_dir() -> Any:
    return importlib.resources.files("deploy") / "images" / "workloads"


def build_files() -> dict[str, bytes]:
    """The small build inputs (everything but the wheels): their digest is the image's."""
    d = _image_dir()
    return {
        "Dockerfile": (d / "Dockerfile").read_bytes(),
        "wheels/requirements.txt": (d / "requirements.txt").read_bytes(),
        "train_digits.py": (d / "train_digits.py").read_bytes(),
        "digits.py": DIGITS_SOURCE.read_bytes(),
    }


def workload_digest() -> str:
    files = build_files()
    return images.source_digest(files.pop("Dockerfile"), files)


def runtime_digest() -> str:
    """The digest ``ensure_runtime_image`` expects on the runtime tag's label."""
    return images.source_digest(images.runtime_dockerfile(), {"actionproxy.py": images.actionproxy_source()})


def proxy_tag(runtime_image: str) -> str:
    """``gleaner/python:3`` -> ``gleaner/python:3-proxy``: the plain runtime the layer is built on."""
    repo, sep, tag = runtime_image.rpartition(":")
    if not sep or "/" in tag:
        repo, tag = runtime_image, "latest"
    return f"{repo}:{tag}-proxy"


def requirements(text: str) -> tuple[list[str], list[str]]:
    """Pinned requirement lines of ``requirements.txt``: (wheels to download, sdists to build)."""
    binary: list[str] = []
    source: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
        (source if name in SDIST_ONLY else binary).append(line)
    return binary, source


# --- host-side downloads -------------------------------------------------------------


def _pip(args: list[str], bar: tqdm[Any], log: IO[str]) -> None:
    argv = [sys.executable, "-m", "pip", *args]
    log.write("$ " + " ".join(argv) + "\n")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        text = line.strip()
        if text.startswith(("Saved ", "Collecting ", "Downloading ", "File was already")):
            bar.set_postfix_str(text[:60], refresh=False)
            bar.update(1)
    if proc.wait() != 0:
        log.flush()
        raise StackError(PART, f"pip {args[0]} failed (exit {proc.returncode}); log {log.name}")


def _apt_download(package: str, dest: Path, log: IO[str]) -> Path:
    """``apt-get download`` a .deb into ``dest`` (refreshing apt's lists once if needed)."""
    for attempt in range(2):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
            log.write(proc.stdout + proc.stderr)
            debs = sorted(Path(tmp).glob(f"{package}_*.deb"))
            if proc.returncode == 0 and debs:
                out = dest / f"{package}.deb"
                shutil.copyfile(debs[0], out)
                return out
        if attempt == 0:
            log.write("apt-get download failed; running apt-get update\n")
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, check=False)
    raise StackError(PART, f"apt-get download {package} failed; log {log.name}")


def wheels_dir(settings: Settings) -> Path:
    req = (_image_dir() / "requirements.txt").read_bytes()
    return settings.state_dir / "cache" / "wheels" / f"workloads-{hashlib.sha256(req).hexdigest()[:12]}"


def download_wheels(settings: Settings, *, progress: bool = True) -> Path:
    """Every wheel the image installs, plus pip's own and libgomp1's .deb, in a cache
    directory keyed by the requirements (downloaded once)."""
    out = wheels_dir(settings)
    done = out / ".complete"
    if done.exists():
        return out
    shutil.rmtree(out, ignore_errors=True)  # a half-done earlier attempt
    out.mkdir(parents=True)
    req_text = (_image_dir() / "requirements.txt").read_text()
    binary, source = requirements(req_text)
    log_path = log_file(settings, "workload-wheels")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    platform_args = [arg for p in PLATFORMS for arg in ("--platform", p)]
    with (
        log_path.open("w") as log,
        tqdm(desc="workload wheels", unit="file", disable=not progress, dynamic_ncols=True) as bar,
    ):
        _pip(
            [
                "download",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--python-version",
                PYTHON_VERSION,
                "--implementation",
                "cp",
                "--abi",
                "cp" + PYTHON_VERSION.replace(".", ""),
                *platform_args,
                "-d",
                str(out),
                "pip",
                *binary,
            ],
            bar,
            log,
        )
        if source:
            _pip(["wheel", "--disable-pip-version-check", "--no-deps", "-w", str(out), *source], bar, log)
        _apt_download("libgomp1", out, log)
        bar.update(1)
    (out / "requirements.txt").write_text(req_text)
    done.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return out


# --- docker build ----------------------------------------------------------------------


@contextlib.contextmanager
def _context(files: dict[str, bytes], wheels: Path) -> Iterator[IO[bytes]]:
    """The build context as a tar file on disk (the wheels are too big to hold twice)."""
    with tempfile.TemporaryFile() as fh:
        with tarfile.open(fileobj=fh, mode="w") as tar:
            now = int(time.time())
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), now, 0o644
                tar.addfile(info, io.BytesIO(data))
            for path in sorted(wheels.iterdir()):
                if path.suffix in (".whl", ".deb"):
                    tar.add(path, arcname=f"wheels/{path.name}")
        fh.seek(0)
        yield fh


def _labels(image: Any) -> dict[str, str]:
    return dict(getattr(image, "labels", None) or {})


def _get(client: docker.DockerClient, tag: str) -> Any | None:
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None


def is_current(settings: Settings) -> bool:
    """Whether ``settings.runtime_image`` already is this workload image on the current runtime."""
    client = docker_client(settings, timeout=30)
    try:
        image = _get(client, settings.runtime_image)
    except docker.errors.DockerException as exc:
        raise StackError(PART, f"cannot inspect {settings.runtime_image}: {exc}") from exc
    finally:
        client.close()
    labels = _labels(image)
    return (
        image is not None
        and labels.get(WORKLOAD_LABEL) == workload_digest()
        and labels.get(images.SOURCE_LABEL) == runtime_digest()
    )


def ensure_workload_image(settings: Settings, *, rebuild: bool = False, progress: bool = True) -> str:
    """Make ``settings.runtime_image`` the runtime plus the workload layer; return the tag.

    Skipped when the image's labels match the current workload files and action proxy.
    A first build downloads ~130 MB of wheels and takes a few minutes; a rebuild after
    a change of the proxy or ``train_digits.py`` reuses the cached wheels.
    """
    if not rebuild and is_current(settings):
        return settings.runtime_image
    base = images.ensure_runtime_image(
        dataclasses.replace(settings, runtime_image=proxy_tag(settings.runtime_image)), progress=progress
    )
    wheels = download_wheels(settings, progress=progress)
    files = build_files()
    labels = {images.SOURCE_LABEL: runtime_digest(), WORKLOAD_LABEL: workload_digest()}
    _build(settings, settings.runtime_image, base, files, wheels, labels, nocache=rebuild, progress=progress)
    return settings.runtime_image


def _build(
    settings: Settings,
    tag: str,
    base: str,
    files: dict[str, bytes],
    wheels: Path,
    labels: dict[str, str],
    *,
    nocache: bool,
    progress: bool,
) -> None:
    client = docker_client(settings, timeout=1800)
    log = log_file(settings, f"build-{tag.replace('/', '_').replace(':', '_')}")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = _get(client, tag)
        with (
            _context(files, wheels) as context,
            log.open("w") as fh,
            tqdm(desc=f"build {tag}", unit="step", disable=not progress, dynamic_ncols=True) as bar,
        ):
            events = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                labels=labels,
                buildargs={"RUNTIME": base},
                rm=True,
                forcerm=True,
                nocache=nocache,
                pull=False,  # no registry: FROM names the local proxy-only runtime
                decode=True,
            )
            for event in events:
                text = str(event.get("stream", "") or event.get("status", ""))
                fh.write(text)
                if text.startswith("Step "):
                    step, _, total = text.split()[1].partition("/")
                    with contextlib.suppress(ValueError):
                        bar.total, bar.n = int(total), int(step)
                        bar.set_postfix_str(text.split(":", 1)[-1].strip()[:50], refresh=False)
                        bar.refresh()
                if "error" in event:
                    fh.write(f"ERROR: {event['error']}\n")
                    fh.flush()
                    raise StackError(PART, f"docker build of {tag} failed: {event['error']}\n{log_tail(log)}")
        new = _get(client, tag)
        if new is None or _labels(new).get(WORKLOAD_LABEL) != labels[WORKLOAD_LABEL]:
            raise StackError(PART, f"docker build did not produce {tag}; log {log}")
        base_image = _get(client, base)
        if old is not None and old.id != new.id and (base_image is None or old.id != base_image.id):
            # The replaced image would otherwise linger untagged; refused while in use.
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(old.id)
    except docker.errors.DockerException as exc:
        raise StackError(PART, f"docker build of {tag} failed: {exc}\n{log_tail(log)}") from exc
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m workloads.image [--rebuild]``: build the workload image, print its tag and size."""
    from gleaner.settings import load_settings

    args = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    start = time.monotonic()
    tag = ensure_workload_image(settings, rebuild="--rebuild" in args)
    client = docker_client(settings)
    try:
        size = client.images.get(tag).attrs.get("Size", 0)
    finally:
        client.close()
    print(f"{tag}: {size / 1e6:.0f} MB, ready in {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
