"""A measured process at a Lambda function's CPU share, through a cgroup-v1 CPU quota (Linux, root).

Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB, so 512 MB is
about 0.29 vCPU and 1,024 MB about 0.58. `CpuShare(0.29)` creates the group
`/sys/fs/cgroup/cpu/bench-<pid>-<n>` with `cpu.cfs_quota_us` = 0.29 × `cpu.cfs_period_us`,
`popen()` starts a process inside it (the child writes its own id to `tasks` between fork and
exec, so nothing it runs escapes the quota), and leaving the `with` block removes the group.
Only the measured process runs inside; moto, the sandbox and this parent run outside it.

Where the cgroup cannot be written (not Linux, not root, cgroup v2 only, a container that
mounts it read-only), `unavailable()` says why in one line and the callers skip their part.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from pathlib import Path
from typing import Any

CPU_ROOT = Path("/sys/fs/cgroup/cpu")
# Lambda's memory sizes and the CPU they buy (1,769 MB = one vCPU)
SHARES = {0.29: 512, 0.58: 1024, 1.0: 1769}
_names = itertools.count()


def unavailable() -> str | None:
    """Why a CPU quota cannot be set here (None: it can): checked by creating a group."""
    if not (CPU_ROOT / "cpu.cfs_quota_us").exists():
        return f"no cgroup-v1 cpu controller at {CPU_ROOT}"
    probe = CPU_ROOT / f"bench-{os.getpid()}-probe"
    try:
        probe.mkdir()
        (probe / "cpu.cfs_quota_us").write_text("10000")
    except OSError as error:
        return f"cannot create a CPU quota group under {CPU_ROOT} ({error.strerror or error}; root needed)"
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass
    return None


class CpuShare:
    """A cgroup holding its processes to `share` of one CPU while the `with` block lasts."""

    def __init__(self, share: float) -> None:
        if not 0 < share <= 4:
            raise ValueError(f"a CPU share of {share} makes no sense here")
        self.share = share
        self.path = CPU_ROOT / f"bench-{os.getpid()}-{next(_names)}"

    def __enter__(self) -> CpuShare:
        self.path.mkdir()
        period = int((self.path / "cpu.cfs_period_us").read_text())
        (self.path / "cpu.cfs_quota_us").write_text(str(round(self.share * period)))
        return self

    def __exit__(self, *_: object) -> None:
        # a group can be removed only once empty: its processes have ended (popen's callers
        # wait for them); a straggler is given a moment
        for _attempt in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"could not remove {self.path}: a process is still in it")

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen:
        """`subprocess.Popen(args, **kwargs)` with the child inside the group from before exec."""
        tasks = str(self.path / "tasks")

        def join() -> None:
            with open(tasks, "w") as handle:
                handle.write(str(os.getpid()))

        return subprocess.Popen(args, preexec_fn=join, **kwargs)  # noqa: PLW1509 - join must run before exec


def label(share: float) -> str:
    """`0.29 CPU (512 MB)`: a share and the Lambda memory size that buys it."""
    memory = SHARES.get(share)
    return f"{share:g} CPU ({memory} MB)" if memory else f"{share:g} CPU"
