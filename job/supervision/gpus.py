"""The GPUs this process may use, found without starting a backend.

Found through NVML (`nvidia-ml-py`, the library `nvidia-smi` and the DCGM exporter use): it
answers in milliseconds, starts no CUDA context and takes no device memory, so a supervising
process (`hptune local`, a worker that starts one trial process per GPU) can plan before any
backend exists, and it names MIG instances by UUID with their parent GPU, which `nvidia-smi -L`
only prints as text. No driver (no `libnvidia-ml.so`): no GPUs, and the reason is kept for the
message of a worker that expected some.

What is visible follows the variables a container runtime and CUDA use:
- `NVIDIA_VISIBLE_DEVICES` = `void`, `none` or empty: none (the runtime mounted no GPU);
- `CUDA_VISIBLE_DEVICES`: the listed devices only, in that order: indices (NVML's order, PCI bus
  order: hptune sets `CUDA_DEVICE_ORDER=PCI_BUS_ID` for its children so CUDA agrees), `GPU-`/`MIG-`
  UUIDs or unique prefixes of them; `-1` or empty: none. An entry naming no device is an error
  (CUDA would silently drop it and every entry after it).

A GPU in MIG mode is not a device a process can use; its MIG instances are, one per process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from job.environment import BadEnvironment

log = logging.getLogger(__name__)

HIDDEN = {"", "-1"}


@dataclass(frozen=True)
class Gpu:
    """One device a process can be pinned to: a whole GPU, or a MIG instance of one."""

    uuid: str  # GPU-... or MIG-...: what CUDA_VISIBLE_DEVICES is given
    name: str
    memory_bytes: int
    index: int  # NVML's index of the physical GPU (the parent's, for a MIG instance)
    parent_uuid: str | None = None  # a MIG instance's GPU (DCGM labels its series with it)
    instance_id: int | None = None  # a MIG instance's GPU instance id (DCGM's GPU_I_ID)

    def dcgm_labels(self) -> tuple[str, str]:
        """(UUID, GPU_I_ID) as the DCGM exporter labels this device's series: a MIG instance under
        its parent GPU's UUID with its GPU instance id; a whole GPU with an empty GPU_I_ID."""
        if self.parent_uuid is None:
            return self.uuid, ""
        return self.parent_uuid, str(self.instance_id)

    @property
    def label(self) -> str:
        where = (
            f"GPU {self.index}" if self.parent_uuid is None else f"GPU {self.index} MIG {self.instance_id}"
        )
        return f"{where} ({self.name}, {self.memory_bytes / 2**30:.0f} GiB, {self.uuid})"


@dataclass(frozen=True)
class Inventory:
    """The devices visible to this process, and why there are none when there are none."""

    gpus: tuple[Gpu, ...]
    reason: str | None = None  # why no GPU was found (no driver, hidden by a variable)


def visible_gpus(env: Mapping[str, str], nvml: Any = None) -> Inventory:
    """The GPUs this process may use. `nvml` is the `pynvml` module (a stand-in in tests)."""
    runtime = env.get("NVIDIA_VISIBLE_DEVICES")
    if runtime is not None and runtime.strip().lower() in {"", "void", "none"}:
        return Inventory((), f"NVIDIA_VISIBLE_DEVICES={runtime!r} gives this process no GPU")
    wanted = env.get("CUDA_VISIBLE_DEVICES")
    if wanted is not None and wanted.strip() in HIDDEN:
        return Inventory((), f"CUDA_VISIBLE_DEVICES={wanted!r} hides every GPU")
    try:
        devices = _nvml_devices(nvml)
    except _NoDriver as err:
        return Inventory((), str(err))
    if wanted is None:
        return Inventory(tuple(devices))
    return Inventory(tuple(_chosen(devices, wanted, "CUDA_VISIBLE_DEVICES")))


def choose(inventory: Inventory, choice: str, flag: str = "--gpus") -> Inventory:
    """The GPUs `choice` names among the visible ones, as `docker run --gpus` takes them: `all`,
    `none`, or a comma list of indices (into the visible list) or UUIDs (`device=` before it is
    allowed). Raises BadEnvironment naming `flag` for a device that is not there."""
    text = choice.strip()
    if text.startswith("device="):
        text = text[len("device=") :]
    if text.lower() == "all":
        return inventory
    if text.lower() == "none":
        return Inventory((), f"{flag} none")
    if not inventory.gpus:
        raise BadEnvironment(
            f"{flag} {choice} asks for GPU(s) {text}, but this machine shows none: {inventory.reason}"
        )
    return Inventory(tuple(_chosen(list(inventory.gpus), text, flag, positional=True)))


def _chosen(devices: Sequence[Gpu], text: str, name: str, positional: bool = False) -> list[Gpu]:
    chosen: list[Gpu] = []
    for entry in (part.strip() for part in text.split(",")):
        found = _find(devices, entry, positional)
        if found is None:
            have = ", ".join(f"{k}: {d.uuid}" for k, d in enumerate(devices)) or "none"
            raise BadEnvironment(f"{name}={text!r}: {entry!r} names no GPU here (visible: {have})")
        if found in chosen:
            raise BadEnvironment(f"{name}={text!r} names {entry!r} twice")
        chosen.append(found)
    return chosen


def _find(devices: Sequence[Gpu], entry: str, positional: bool) -> Gpu | None:
    if entry.isdigit():
        number = int(entry)
        if positional:  # an index into the visible list, as CUDA counts
            return devices[number] if number < len(devices) else None
        whole = [d for d in devices if d.index == number]
        return whole[0] if len(whole) == 1 else None
    matches = [d for d in devices if d.uuid.startswith(entry) or d.parent_uuid == entry]
    if len(matches) > 1 and any(d.parent_uuid == entry for d in matches):
        return None  # a MIG-mode GPU's UUID: name one of its instances
    return matches[0] if len(matches) == 1 else None


class _NoDriver(Exception):
    pass


def _nvml_devices(nvml: Any) -> list[Gpu]:
    if nvml is None:
        nvml = _import_nvml()
    try:
        nvml.nvmlInit()
    except Exception as err:
        raise _NoDriver(f"no NVIDIA driver answers (NVML: {err})") from None
    try:
        devices: list[Gpu] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            devices += _mig_instances(nvml, handle, index) or [_describe(nvml, handle, index)]
        return devices
    finally:
        nvml.nvmlShutdown()


def _import_nvml() -> ModuleType:
    try:
        import pynvml
    except ImportError:
        raise _NoDriver("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from None
    return pynvml


def _describe(nvml: Any, handle: Any, index: int, parent: Gpu | None = None) -> Gpu:
    return Gpu(
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        index=index,
        parent_uuid=parent.uuid if parent else None,
        instance_id=int(nvml.nvmlDeviceGetGpuInstanceId(handle)) if parent else None,
    )


def _mig_instances(nvml: Any, handle: Any, index: int) -> list[Gpu]:
    """The MIG instances of a GPU in MIG mode; empty for a GPU used whole."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except Exception:  # NVML_ERROR_NOT_SUPPORTED: a GPU without MIG
        return []
    if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        return []
    parent = _describe(nvml, handle, index)
    instances = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:  # NVML_ERROR_NOT_FOUND: an empty slot
            continue
        instances.append(_describe(nvml, mig, index, parent))
    if not instances:
        log.warning(
            "GPU %d (%s) is in MIG mode with no MIG instance: no process can use it", index, parent.uuid
        )
    return instances


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
