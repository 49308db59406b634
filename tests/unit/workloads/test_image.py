"""The pure parts of the workload image build (no Docker)."""

from __future__ import annotations

from pathlib import Path

from deploy import images
from gleaner.settings import Settings
from workloads import image


def test_proxy_tag() -> None:
    assert image.proxy_tag("gleaner/python:3") == "gleaner/python:3-proxy"
    assert image.proxy_tag("registry:5000/runtime") == "registry:5000/runtime:latest-proxy"
    assert image.proxy_tag("plain") == "plain:latest-proxy"


def test_requirements_are_pinned_and_split() -> None:
    text = image.build_files()["wheels/requirements.txt"].decode()
    binary, source = image.requirements(text)
    assert source == ["pyaes==1.6.1"]
    names = {line.split("==")[0] for line in binary}
    assert {"numpy", "scikit-learn", "joblib", "lightgbm", "opencv-python-headless"} <= names
    assert all("==" in line for line in binary + source)  # reproducible image
    assert image.requirements("# c\n\nfoo>=1 # x\npyaes\n") == (["foo>=1"], ["pyaes"])


def test_digest_covers_the_build_inputs() -> None:
    files = image.build_files()
    assert set(files) == {"Dockerfile", "wheels/requirements.txt", "train_digits.py", "digits.py"}
    assert b"FROM ${RUNTIME} AS install" in files["Dockerfile"]
    digest = image.workload_digest()
    assert digest == image.workload_digest()
    assert digest != images.source_digest(files["Dockerfile"] + b"#", {})
    # The runtime digest is the one ensure_runtime_image checks on the same tag.
    proxy = {"actionproxy.py": images.actionproxy_source()}
    assert image.runtime_digest() == images.source_digest(images.runtime_dockerfile(), proxy)


def test_wheels_dir_is_keyed_by_the_requirements(tmp_path: Path) -> None:
    d = image.wheels_dir(Settings(state_dir=tmp_path))
    assert d.parent == tmp_path / "cache" / "wheels" and d.name.startswith("workloads-")


def test_platform_tags_reach_bookworm_glibc() -> None:
    assert "manylinux_2_36_x86_64" in image.PLATFORMS and "manylinux2014_x86_64" in image.PLATFORMS
