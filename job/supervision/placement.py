"""Which process gets which GPUs: workers over a machine's GPUs (`hptune local`), and a worker's
trial processes over its own GPUs. Pure functions of a device list, so every case is testable
without a GPU.

A process is pinned through `CUDA_VISIBLE_DEVICES` with device UUIDs, never indices: CUDA numbers
devices fastest-first unless told otherwise and NVML by PCI bus, and a UUID means the same device
to both (and is the only way to name a MIG instance). A GPU shared by n processes gives each
a 1/n share of its memory (`memory_share_environment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from job.environment import EXPECT_GPUS_VARIABLE, GPU_SHARE_VARIABLE, BadEnvironment
from job.supervision.gpus import Gpu, Inventory
from job.supervision.processes import memory_share_environment

# `--gpus none` on a machine with GPUs: hidden from both backends (CUDA shown no device, JAX told
# to use the CPU, so it does not look for one).
ON_CPU = {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}


@dataclass(frozen=True)
class Placement:
    """One process's devices: the GPUs it sees, and how many processes share them."""

    gpus: tuple[Gpu, ...]
    share: int = 1  # processes on these GPUs, this one included

    def environment(self) -> dict[str, str]:
        """The variables that pin a child process to these GPUs (none without GPUs)."""
        if not self.gpus:
            return {}
        return {
            "CUDA_VISIBLE_DEVICES": ",".join(gpu.uuid for gpu in self.gpus),
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            EXPECT_GPUS_VARIABLE: str(len(self.gpus)),
            GPU_SHARE_VARIABLE: str(self.share),
            **memory_share_environment(self.share),
        }

    def describe(self) -> str:
        if not self.gpus:
            return "CPU"
        names = ", ".join(_short(gpu) for gpu in self.gpus)
        return names if self.share == 1 else f"{names} (shared by {self.share}, 1/{self.share} of its memory)"


def over_workers(gpus: Sequence[Gpu], workers: int) -> list[Placement]:
    """Workers over GPUs: fewer workers than GPUs split them evenly, each worker its own
    contiguous run (the first ones one more when they don't divide); more workers than GPUs take
    them in turn, each GPU's memory shared by the workers on it. No GPU: every worker on the CPU."""
    if workers < 1:
        raise BadEnvironment(f"--workers must be at least 1; got {workers}")
    if not gpus:
        return [Placement(()) for _ in range(workers)]
    if workers <= len(gpus):
        size, extra = divmod(len(gpus), workers)
        placements, start = [], 0
        for k in range(workers):
            end = start + size + (1 if k < extra else 0)
            placements.append(Placement(tuple(gpus[start:end])))
            start = end
        return placements
    on_gpu = [sum(1 for k in range(workers) if k % len(gpus) == g) for g in range(len(gpus))]
    return [Placement((gpus[k % len(gpus)],), on_gpu[k % len(gpus)]) for k in range(workers)]


def over_trials(
    gpus: Sequence[Gpu], trials_per_gpu: int, gpus_per_trial: int, share: int = 1
) -> list[Placement]:
    """A worker's trial processes over its GPUs: `gpus_per_trial` GPUs each (one trial over
    several, data parallel), `trials_per_gpu` processes on each group. `share`: processes of
    other workers on the same GPUs (`hptune local` with more workers than GPUs). No GPU: the
    worker's `trials_per_gpu` processes on the CPU."""
    if not gpus:
        return [Placement((), share * trials_per_gpu) for _ in range(trials_per_gpu)]
    if gpus_per_trial > len(gpus) or len(gpus) % gpus_per_trial:
        raise BadEnvironment(
            f"spec.distribution.gpusPerTrial is {gpus_per_trial}, but this worker has {len(gpus)} GPU(s): "
            f"it must divide them (one of {_divisors(len(gpus))})"
        )
    groups = [tuple(gpus[k : k + gpus_per_trial]) for k in range(0, len(gpus), gpus_per_trial)]
    return [Placement(group, share * trials_per_gpu) for group in groups for _ in range(trials_per_gpu)]


def idle(gpus: Sequence[Gpu], placements: Sequence[Placement]) -> list[Gpu]:
    """The GPUs no placement uses."""
    used = {gpu.uuid for placement in placements for gpu in placement.gpus}
    return [gpu for gpu in gpus if gpu.uuid not in used]


def _short(gpu: Gpu) -> str:
    where = f"GPU {gpu.index}" if gpu.parent_uuid is None else f"GPU {gpu.index}/MIG {gpu.instance_id}"
    return f"{where} {gpu.uuid[:12]}"


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def require(inventory: Inventory, expected: int | None) -> None:
    """Stop when this process was given GPUs (HPTUNE_EXPECT_GPUS) and NVML shows fewer."""
    if expected and len(inventory.gpus) < expected:
        found = ", ".join(gpu.uuid for gpu in inventory.gpus) or f"none ({inventory.reason})"
        raise BadEnvironment(
            f"this worker was given {expected} GPU(s) ({EXPECT_GPUS_VARIABLE}={expected}: the chart's "
            f"gpu.count, or `hptune local --gpus`), but it sees {found}: is the NVIDIA container "
            "runtime in use (runtimeClassName, docker run --gpus)? Set gpu.count: 0 (or --gpus none) "
            "to train on the CPU on purpose."
        )
