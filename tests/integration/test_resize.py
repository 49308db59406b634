"""Live CPU resize by a direct cgroup write (``DockerEngine.set_cpu``) on a real container.
Needs dockerd and the runtime image (the session stack brings both up)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from gleaner.container_labels import INVOKER_LABEL
from gleaner.errors import DockerError
from gleaner.settings import Settings
from invoker_agent.cgroup_resize import CgroupGone
from invoker_agent.docker_engine import ContainerInfo, DockerEngine
from monitor.cgroups import find_cgroup

pytestmark = pytest.mark.integration


@pytest.fixture()
def engine(settings: Settings) -> Iterator[DockerEngine]:
    eng = DockerEngine(settings)
    yield eng
    eng.close()


@pytest.fixture()
def container(engine: DockerEngine, stack_up: Settings, runtime_image: str) -> Iterator[ContainerInfo]:
    inv = f"itest-resize-{uuid.uuid4().hex[:8]}"
    info = engine.start(
        image=runtime_image, name=f"gleaner-{inv}", cpu=1.0, memory_mb=128, labels={INVOKER_LABEL: inv}
    )
    yield info
    engine.remove_managed(inv)


def _quota(engine: DockerEngine, info: ContainerInfo) -> int:
    cg = find_cgroup(info.pid, container_id=info.id)
    if cg.version == 1:
        return int((cg.cpu_dir / "cpu.cfs_quota_us").read_text())
    quota, period = (cg.cpu_dir / "cpu.max").read_text().split()
    assert period == "100000"
    return int(quota)


def test_set_cpu_resizes_live_and_a_removed_container_raises(
    engine: DockerEngine, container: ContainerInfo
) -> None:
    assert _quota(engine, container) == 100_000
    for cpu, quota in ((0.5, 50_000), (1.25, 125_000), (0.25, 25_000)):
        engine.set_cpu(container, cpu)
        assert _quota(engine, container) == quota
    assert engine.resizer.cpu_limit(container.id, container.pid) == pytest.approx(0.25)
    # Docker's own view is stale until the next update, which rewrites the cgroup wholesale.
    assert engine.inspect(container.id)["HostConfig"]["CpuQuota"] == 100_000
    engine.update(container.id, cpu=1.0, memory_mb=128)
    assert _quota(engine, container) == 100_000

    engine.remove(container.id)
    with pytest.raises(DockerError):
        engine.set_cpu(container, 0.5)


def test_a_container_that_dies_on_its_own_is_gone(engine: DockerEngine, container: ContainerInfo) -> None:
    engine.set_cpu(container, 0.5)  # the cgroup is located and cached
    assert engine.resizer.cached() == 1
    engine.api.kill(container.id)  # not through engine.remove: the cache still holds the path
    engine.api.wait(container.id, timeout=30)
    with pytest.raises(CgroupGone, match="is gone"):
        engine.set_cpu(container, 1.0)
    assert engine.resizer.cached() == 0
