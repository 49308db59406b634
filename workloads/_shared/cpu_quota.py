"""How many worker processes this container's CPU allocation pays for.

Shipped inside every workload function's zip (``workloads/deploy.py`` adds it), so the
functions need nothing from the platform. Read at call time, not import time: a warm
container may have been resized (``docker update --cpus``) since it started.
"""

import math
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path):
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def cpu_quota(root=CGROUP_ROOT):
    """The CPU quota in cores (``--cpus``), or None when there is none."""
    try:  # cgroup v2: "<quota|max> <period>"
        quota, period = _read(os.path.join(root, "cpu.max")).split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for controller in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # cgroup v1
        base = os.path.join(root, controller)
        try:
            quota = int(_read(os.path.join(base, "cpu.cfs_quota_us")))
            period = int(_read(os.path.join(base, "cpu.cfs_period_us")))
        except (OSError, ValueError):
            continue
        return quota / period if quota > 0 and period > 0 else None
    return None


def usable_cpus():
    """CPUs the scheduler lets this process run on (affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_count(root=CGROUP_ROOT):
    """ceil(quota), at least 1, never more than the CPUs we may run on.

    A 0.5-core container gets one worker (it cannot run two at once anyway); a 1.5-core
    one gets two, so the fraction above 1 is not left idle.
    """
    quota = cpu_quota(root)
    cpus = usable_cpus()
    if quota is None:
        return cpus
    return max(1, min(cpus, math.ceil(quota - 1e-6)))
