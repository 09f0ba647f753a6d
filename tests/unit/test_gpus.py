"""Which GPUs a process sees and which process gets which: on a stand-in for NVML's answers (no
GPU here), for 1, 2 and 8 GPUs, MIG instances, a preset CUDA_VISIBLE_DEVICES, and more workers
than GPUs."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from job.environment import EXPECT_GPUS_VARIABLE, GPU_SHARE_VARIABLE, BadEnvironment
from job.supervision.gpus import Gpu, Inventory, choose, visible_gpus
from job.supervision.local import placement_lines
from job.supervision.placement import idle, over_trials, over_workers

GIB = 2**30


class NvmlError(Exception):
    pass


@dataclass
class Device:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory: int = 80 * GIB
    instances: list[Device | None] | None = None  # MIG mode: its slots (None: an empty slot)
    instance_id: int = 0


@dataclass
class FakeNvml:
    """NVML's calls that discovery makes, answering for the devices given."""

    devices: list[Device] = field(default_factory=list)
    driver: bool = True
    NVML_DEVICE_MIG_ENABLE: int = 1

    def nvmlInit(self) -> None:
        if not self.driver:
            raise NvmlError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Device:
        return self.devices[index]

    def nvmlDeviceGetUUID(self, handle: Device) -> str:
        return handle.uuid

    def nvmlDeviceGetName(self, handle: Device) -> bytes:
        return handle.name.encode()  # older nvidia-ml-py answers bytes

    def nvmlDeviceGetMemoryInfo(self, handle: Device) -> Any:
        return SimpleNamespace(total=handle.memory)

    def nvmlDeviceGetMigMode(self, handle: Device) -> tuple[int, int]:
        if handle.instances is None:
            raise NvmlError("Not Supported")
        return 1, 1

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Device) -> int:
        return len(handle.instances or [])

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Device, slot: int) -> Device:
        instance = (handle.instances or [])[slot]
        if instance is None:
            raise NvmlError("Not Found")
        return instance

    def nvmlDeviceGetGpuInstanceId(self, handle: Device) -> int:
        return handle.instance_id


def machine(count: int) -> FakeNvml:
    return FakeNvml([Device(f"GPU-{k:08d}-aaaa") for k in range(count)])


def uuids(inventory: Inventory | list[Gpu] | tuple[Gpu, ...]) -> list[str]:
    gpus = inventory.gpus if isinstance(inventory, Inventory) else inventory
    return [gpu.uuid for gpu in gpus]


# -- what a process sees ------------------------------------------------------------------------------


def test_every_gpu_of_the_machine_is_visible_by_default() -> None:
    found = visible_gpus({}, machine(8))
    assert uuids(found) == [f"GPU-{k:08d}-aaaa" for k in range(8)]
    assert [gpu.index for gpu in found.gpus] == list(range(8))
    assert found.gpus[0].name == "NVIDIA H100 80GB HBM3" and found.gpus[0].memory_bytes == 80 * GIB


def test_no_driver_means_no_gpu_and_says_why() -> None:
    found = visible_gpus({}, FakeNvml(driver=False))
    assert found.gpus == () and "no NVIDIA driver" in (found.reason or "")


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"NVIDIA_VISIBLE_DEVICES": "void"}, "NVIDIA_VISIBLE_DEVICES"),
        ({"NVIDIA_VISIBLE_DEVICES": ""}, "NVIDIA_VISIBLE_DEVICES"),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, "CUDA_VISIBLE_DEVICES"),
        ({"CUDA_VISIBLE_DEVICES": ""}, "CUDA_VISIBLE_DEVICES"),
    ],
)
def test_variables_that_hide_every_gpu(env: dict[str, str], reason: str) -> None:
    found = visible_gpus(env, machine(2))
    assert found.gpus == () and reason in (found.reason or "")


def test_a_preset_cuda_visible_devices_chooses_and_orders_by_index_or_uuid_prefix() -> None:
    assert uuids(visible_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}, machine(4))) == [
        "GPU-00000003-aaaa",
        "GPU-00000001-aaaa",
    ]
    assert uuids(visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-00000002"}, machine(4))) == ["GPU-00000002-aaaa"]


@pytest.mark.parametrize("value", ["4", "GPU-ffff", "0,0"])
def test_a_cuda_visible_devices_entry_naming_no_gpu_is_refused_by_name(value: str) -> None:
    with pytest.raises(BadEnvironment, match="CUDA_VISIBLE_DEVICES") as refused:
        visible_gpus({"CUDA_VISIBLE_DEVICES": value}, machine(4))
    assert "GPU-00000003-aaaa" in str(refused.value) or "twice" in str(refused.value)


def test_a_gpu_in_mig_mode_shows_its_instances_not_itself() -> None:
    slices = [
        Device(f"MIG-{k}bbb", name="NVIDIA A100 MIG 3g.40gb", memory=40 * GIB, instance_id=k + 1)
        for k in range(2)
    ]
    nvml = FakeNvml(
        [Device("GPU-00000000-aaaa"), Device("GPU-00000001-aaaa", instances=[slices[0], None, slices[1]])]
    )
    found = visible_gpus({}, nvml)
    assert uuids(found) == ["GPU-00000000-aaaa", "MIG-0bbb", "MIG-1bbb"]
    mig = found.gpus[1]
    assert (mig.parent_uuid, mig.instance_id, mig.index) == ("GPU-00000001-aaaa", 1, 1)
    # The MIG-mode GPU's own UUID names no single device a process can use.
    with pytest.raises(BadEnvironment, match="CUDA_VISIBLE_DEVICES"):
        visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-00000001-aaaa"}, nvml)
    assert uuids(visible_gpus({"CUDA_VISIBLE_DEVICES": "MIG-1"}, nvml)) == ["MIG-1bbb"]


# -- --gpus --------------------------------------------------------------------------------------------


def test_the_gpus_flag_takes_all_none_positions_and_uuids() -> None:
    found = visible_gpus({"CUDA_VISIBLE_DEVICES": "1,2,3"}, machine(4))
    assert choose(found, "all") == found
    assert choose(found, "none").gpus == ()
    assert uuids(choose(found, "0,2")) == ["GPU-00000001-aaaa", "GPU-00000003-aaaa"]  # as CUDA counts
    assert uuids(choose(found, "device=GPU-00000002")) == ["GPU-00000002-aaaa"]


def test_gpus_asked_for_on_a_machine_without_any_are_named() -> None:
    with pytest.raises(BadEnvironment, match=r"--gpus 0,1 asks for GPU\(s\) 0,1.*no NVIDIA driver"):
        choose(visible_gpus({}, FakeNvml(driver=False)), "0,1")
    with pytest.raises(BadEnvironment, match="--gpus"):
        choose(visible_gpus({}, machine(2)), "2")


# -- placement ----------------------------------------------------------------------------------------


def gpus(count: int) -> tuple[Gpu, ...]:
    return visible_gpus({}, machine(count)).gpus


@pytest.mark.parametrize(
    ("count", "workers", "expected"),
    [
        (1, 1, [[0]]),
        (2, 2, [[0], [1]]),
        (8, 8, [[k] for k in range(8)]),
        (8, 2, [[0, 1, 2, 3], [4, 5, 6, 7]]),
        (8, 3, [[0, 1, 2], [3, 4, 5], [6, 7]]),
    ],
)
def test_workers_split_the_gpus_each_its_own(count: int, workers: int, expected: list[list[int]]) -> None:
    placements = over_workers(gpus(count), workers)
    assert [[gpu.index for gpu in p.gpus] for p in placements] == expected
    assert all(p.share == 1 for p in placements) and idle(gpus(count), placements) == []
    env = placements[0].environment()
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(g.uuid for g in placements[0].gpus)
    assert env[EXPECT_GPUS_VARIABLE] == str(len(expected[0])) and env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"


def test_more_workers_than_gpus_share_them_evenly_with_a_memory_share() -> None:
    placements = over_workers(gpus(2), 5)
    assert [p.gpus[0].index for p in placements] == [0, 1, 0, 1, 0]
    assert [p.share for p in placements] == [3, 2, 3, 2, 3]
    env = placements[0].environment()
    assert env[GPU_SHARE_VARIABLE] == "3" and env["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.300"


def test_without_gpus_every_worker_runs_on_the_cpu_and_its_environment_is_untouched() -> None:
    placements = over_workers((), 3)
    assert [p.gpus for p in placements] == [(), (), ()]
    assert placements[0].environment() == {} and placements[0].describe() == "CPU"


def test_zero_workers_is_refused() -> None:
    with pytest.raises(BadEnvironment, match="--workers"):
        over_workers(gpus(2), 0)


def test_a_worker_runs_one_trial_process_per_gpu_times_trials_per_gpu() -> None:
    four = gpus(4)
    assert [[g.index for g in p.gpus] for p in over_trials(four, 1, 1)] == [[0], [1], [2], [3]]
    packed = over_trials(four[:2], trials_per_gpu=2, gpus_per_trial=1)
    assert [(p.gpus[0].index, p.share) for p in packed] == [(0, 2), (0, 2), (1, 2), (1, 2)]
    assert [[g.index for g in p.gpus] for p in over_trials(four, 1, 2)] == [[0, 1], [2, 3]]
    # A GPU other workers already share: each trial process's share counts them too.
    assert [p.share for p in over_trials(four[:1], 2, 1, share=3)] == [6, 6]


@pytest.mark.parametrize(("count", "per_trial"), [(2, 3), (3, 2)])
def test_gpus_per_trial_must_divide_a_workers_gpus(count: int, per_trial: int) -> None:
    with pytest.raises(BadEnvironment, match=r"gpusPerTrial is \d, but this worker has \d GPU"):
        over_trials(gpus(count), 1, per_trial)


def test_the_start_line_says_which_worker_has_which_gpu_and_which_sit_idle() -> None:
    four = gpus(4)
    chosen = choose(Inventory(four), "0,2").gpus
    lines = placement_lines(four, over_workers(chosen, 2), on_cpu=False)
    assert lines[0].startswith("tuner0: GPU 0 GPU-00000000") and lines[1].startswith(
        "tuner1: GPU 2 GPU-00000002"
    )
    assert lines[2].startswith("idle: GPU 1 (NVIDIA H100 80GB HBM3, 80 GiB, GPU-00000001-aaaa), GPU 3")
    assert placement_lines(four, over_workers((), 2), on_cpu=True) == [
        "every worker on the CPU (--gpus none)"
    ]
    assert placement_lines((), over_workers((), 2), on_cpu=False) == [
        "every worker on the CPU (no GPU found)"
    ]


def test_dcgm_labels_name_a_mig_instance_by_its_parent_gpu_and_instance_id() -> None:
    mig = Device("MIG-0bbb", instance_id=2)
    nvml = FakeNvml([Device("GPU-00000000-aaaa"), Device("GPU-00000001-aaaa", instances=[mig])])
    whole, instance = visible_gpus({}, nvml).gpus
    assert whole.dcgm_labels() == ("GPU-00000000-aaaa", "")
    assert instance.dcgm_labels() == ("GPU-00000001-aaaa", "2")
