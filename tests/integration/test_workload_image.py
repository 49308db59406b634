"""The workload runtime image, built for real without a registry (Docker only).

Builds ``settings.runtime_image`` with the workload layer (first time: wheels download
and ``docker build``, a couple of minutes), then checks the libraries, the digit
classifier trained at build time, that ``ensure_runtime_image`` keeps the image, and
that a function inside sees its container's CPU quota.
"""

from __future__ import annotations

import json

import docker
import pytest

from deploy import images
from deploy.services import docker_client
from gleaner.settings import Settings
from workloads import image as workload_images
from workloads.catalog import WORKLOADS
from workloads.image import WORKLOAD_LABEL, ensure_workload_image, is_current, proxy_tag
from workloads.local import call, run_in_container

pytestmark = pytest.mark.integration

PROBE = """
import json, sys, time
t = time.perf_counter()
import cv2, joblib, lightgbm, numpy, pyaes, sklearn
imports = time.perf_counter() - t
sys.path.insert(0, "/opt/gleaner")
import digits
from sklearn.datasets import load_digits
saved = joblib.load("/opt/gleaner/models/digits.joblib")
data = load_digits()
import numpy as np
feats = []
for image in data.images[:200]:
    canvas = np.full((64, 64), 220.0, np.float32)
    digits.paint(canvas, digits.glyph(image, 40), 12, 12)
    feats.append(digits.features(digits.denoise(canvas.astype(np.uint8))))
accuracy = float((saved["model"].predict(np.stack(feats)) == data.target[:200]).mean())
print(json.dumps({
    "versions": [cv2.__version__, lightgbm.__version__, sklearn.__version__, numpy.__version__],
    "aes": pyaes.AESModeOfOperationCTR(b"k" * 32).encrypt(b"gleaner").hex(),
    "model": type(saved["model"]).__name__,
    "fingerprint_ok": saved["fingerprint"] == digits.FINGERPRINT,
    "accuracy": accuracy,
    "imports": imports,
}))
"""


def _built_again(*_args: object, **_kw: object) -> None:
    pytest.fail("a current workload image was built again")


@pytest.fixture(scope="module")
def workload_image(settings: Settings) -> str:
    return ensure_workload_image(settings, progress=False)


def test_image_has_the_libraries_and_the_trained_classifier(settings: Settings, workload_image: str) -> None:
    client = docker_client(settings, timeout=300)
    try:
        out = client.containers.run(
            workload_image, ["python3", "-c", PROBE], remove=True, network_mode="none"
        )
        image = client.images.get(workload_image)
    finally:
        client.close()
    probe = json.loads(out.decode().strip().splitlines()[-1])
    assert probe["model"] == "SVC" and probe["fingerprint_ok"]
    assert probe["accuracy"] > 0.9
    assert len(probe["aes"]) == 14
    assert image.labels[WORKLOAD_LABEL]
    assert image.attrs["Config"]["Env"].count("GLEANER_DIGITS_MODEL=/opt/gleaner/models/digits.joblib") == 1


def test_runtime_and_workload_checks_both_accept_the_image(
    settings: Settings, workload_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = {"actionproxy.py": images.actionproxy_source()}
    # ensure_runtime_image would leave it alone (no rebuild that drops the layer) ...
    assert images.image_is_current(settings, workload_image, images.runtime_dockerfile(), proxy)
    assert images.ensure_runtime_image(settings, progress=False) == workload_image
    assert is_current(settings)
    # ... and a second ensure is a cache hit: it downloads and builds nothing.
    monkeypatch.setattr(workload_images, "download_wheels", _built_again)
    monkeypatch.setattr(workload_images, "_build", _built_again)
    assert ensure_workload_image(settings, progress=False) == workload_image
    client = docker_client(settings)
    try:
        assert client.images.get(proxy_tag(workload_image)).labels.get(WORKLOAD_LABEL) is None
    except docker.errors.ImageNotFound:
        pytest.fail("the proxy-only base image is missing")
    finally:
        client.close()


@pytest.mark.parametrize(("cpus", "workers"), [(0.5, 1), (2.0, 2)])
def test_function_in_the_image_uses_its_cpu_quota(
    settings: Settings, workload_image: str, cpus: float, workers: int
) -> None:
    w = WORKLOADS["parallel-aes"]
    stage_input = call(w.function("split"), {"text": "lorem ipsum dolor " * 6000})  # ~108 KB
    (run,) = run_in_container(settings, workload_image, w.function("aes3"), stage_input, cpus=cpus)
    assert run.result["ok"] is True and run.result["workers"] == workers
