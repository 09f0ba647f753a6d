"""The process environment, read once at start into typed objects.

Roles follow the Keras Tuner convention: ``KERASTUNER_TUNER_ID`` (``chief`` or ``tuner<k>``),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT``. A Kubernetes Indexed Job's
``JOB_COMPLETION_INDEX`` gives a worker the stable id ``tuner<index>``. No such variables: one
standalone process runs the whole search.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from job.errors import BadInput

WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Set by a worker that restarts itself to release memory (job/supervision/recycle.py), for its next life.
RESTARTS_VARIABLE = "HPTUNE_WORKER_RESTARTS"
# Set for a process given GPUs (by the chart from gpu.count, by the process that pinned it): how
# many it must see (job/supervision/placement.py).
EXPECT_GPUS_VARIABLE = "HPTUNE_EXPECT_GPUS"
# Set for a process whose GPU(s) other processes share: how many processes, itself included.
GPU_SHARE_VARIABLE = "HPTUNE_GPU_SHARE"


class BadEnvironment(BadInput):
    """The environment is partial or contradictory. The message names the variable."""


@dataclass(frozen=True)
class Standalone:
    """One process runs the whole search."""


@dataclass(frozen=True)
class Chief:
    """Serves the oracle. Address and port fall back to the spec's distribution section."""

    address: str | None
    port: int | None


@dataclass(frozen=True)
class Worker:
    """Runs trials handed out by the chief at address:port."""

    tuner_id: str
    address: str
    port: int

    @property
    def target(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


Role = Standalone | Chief | Worker


def role_name(role: Role) -> str:
    """How logs and summaries name a role: "standalone", "chief", or the worker's id."""
    if isinstance(role, Worker):
        return role.tuner_id
    return "chief" if isinstance(role, Chief) else "standalone"


@dataclass(frozen=True)
class Cluster:
    """Where this pod runs, when it runs inside Kubernetes."""

    namespace: str
    pod_name: str | None
    job_name: str | None
    worker_job_name: str | None


@dataclass(frozen=True)
class Environment:
    role: Role
    data_dir: Path | None
    cluster: Cluster | None
    trial_slot: int | None = None  # set in the trial processes a packed worker starts
    restarts: int = 0  # restarts to release memory (job/supervision/recycle.py)
    # Who holds the output's lease (job/search/ownership.py): HPTUNE_CHIEF_IDENTITY, else the chief
    # Job (HPTUNE_NAMESPACE/HPTUNE_JOB_NAME) in Kubernetes; None: the process decides.
    chief_identity: str | None = None
    # GPUs this process was given (HPTUNE_EXPECT_GPUS, set by the chart from gpu.count and by the
    # process that pinned it); a process that sees fewer stops before any trial. None: not asked.
    expected_gpus: int | None = None
    # Processes sharing this process's GPU(s) (HPTUNE_GPU_SHARE: `hptune local` with more workers
    # than GPUs); a worker that packs trial processes divides the memory further.
    gpu_share: int = 1


def read_environment(env: Mapping[str, str], service_account_dir: Path = SERVICE_ACCOUNT_DIR) -> Environment:
    """Read every variable hptune uses, once. Raises BadEnvironment naming a bad variable."""
    data_dir = env.get("HPTUNE_DATA_DIR")
    slot = env.get("HPTUNE_TRIAL_SLOT")
    if slot is not None and not slot.isdigit():
        raise BadEnvironment(f"HPTUNE_TRIAL_SLOT={slot!r} is not a non-negative integer")
    restarts = env.get(RESTARTS_VARIABLE, "0")
    if not restarts.isdigit():
        raise BadEnvironment(f"{RESTARTS_VARIABLE}={restarts!r} is not a non-negative integer")
    expected = _count(env, EXPECT_GPUS_VARIABLE, minimum=0)
    share = _count(env, GPU_SHARE_VARIABLE, minimum=1)
    return Environment(
        role=read_role(env),
        data_dir=Path(data_dir) if data_dir else None,
        cluster=_read_cluster(env, service_account_dir),
        trial_slot=int(slot) if slot is not None else None,
        restarts=int(restarts),
        chief_identity=_chief_identity(env),
        expected_gpus=expected,
        gpu_share=share if share is not None else 1,
    )


def _count(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    text = env.get(name)
    if text is None or not text.strip():
        return None
    if not text.strip().isdigit() or int(text) < minimum:
        raise BadEnvironment(f"{name}={text!r} is not an integer of at least {minimum}")
    return int(text)


def _chief_identity(env: Mapping[str, str]) -> str | None:
    explicit = env.get("HPTUNE_CHIEF_IDENTITY", "").strip()
    if explicit:
        return explicit
    job_name = env.get("HPTUNE_JOB_NAME")
    if job_name:
        return f"job {env.get('HPTUNE_NAMESPACE') or 'default'}/{job_name}"
    return None


def read_role(env: Mapping[str, str]) -> Role:
    tuner_id = env.get("KERASTUNER_TUNER_ID")
    address = env.get("KERASTUNER_ORACLE_IP")
    port_text = env.get("KERASTUNER_ORACLE_PORT")
    index_text = env.get("JOB_COMPLETION_INDEX")

    port = None
    if port_text is not None:
        if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
            raise BadEnvironment(f"KERASTUNER_ORACLE_PORT={port_text!r} is not a port number (1-65535)")
        port = int(port_text)
    if address is not None and not address.strip():
        raise BadEnvironment("KERASTUNER_ORACLE_IP is set but empty; give the chief's address")
    if address is not None and port is None:
        raise BadEnvironment(
            f"KERASTUNER_ORACLE_IP={address} is set but KERASTUNER_ORACLE_PORT is not; "
            "set both (the chief's address and port)"
        )
    if port is not None and address is None:
        raise BadEnvironment(
            f"KERASTUNER_ORACLE_PORT={port} is set but KERASTUNER_ORACLE_IP is not; "
            "set both (the chief's address and port)"
        )

    if tuner_id is None and index_text is not None:
        if not index_text.strip().isdigit():
            raise BadEnvironment(f"JOB_COMPLETION_INDEX={index_text!r} is not a non-negative integer")
        tuner_id = f"tuner{int(index_text)}"
        source = f"JOB_COMPLETION_INDEX={index_text}"
    else:
        source = f"KERASTUNER_TUNER_ID={tuner_id}"

    if tuner_id is None:
        if address is not None:
            raise BadEnvironment(
                "KERASTUNER_ORACLE_IP is set but KERASTUNER_TUNER_ID is not; set it to 'chief' "
                "on the chief and 'tuner<k>' on each worker"
            )
        return Standalone()
    if tuner_id == "chief":
        return Chief(address=address, port=port)
    if "chief" in tuner_id:
        raise BadEnvironment(
            f"KERASTUNER_TUNER_ID={tuner_id!r} contains 'chief', which Keras Tuner treats as the "
            "chief; use exactly 'chief' for the chief and 'tuner<k>' for workers"
        )
    if not WORKER_ID.match(tuner_id):
        raise BadEnvironment(
            f"KERASTUNER_TUNER_ID={tuner_id!r} is not a valid worker id; use 'tuner<k>' "
            "(letters, digits, '-', '_' or '.', at most 63)"
        )
    if address is None or port is None:
        raise BadEnvironment(
            f"{source} makes this a worker, but KERASTUNER_ORACLE_IP and "
            "KERASTUNER_ORACLE_PORT (the chief's address) are not set"
        )
    return Worker(tuner_id=tuner_id, address=address, port=port)


def _read_cluster(env: Mapping[str, str], service_account_dir: Path) -> Cluster | None:
    if "KUBERNETES_SERVICE_HOST" not in env or not (service_account_dir / "token").exists():
        return None
    namespace_file = service_account_dir / "namespace"
    namespace = env.get("HPTUNE_NAMESPACE") or (
        namespace_file.read_text().strip() if namespace_file.exists() else "default"
    )
    return Cluster(
        namespace=namespace,
        pod_name=env.get("HPTUNE_POD_NAME"),
        job_name=env.get("HPTUNE_JOB_NAME"),
        worker_job_name=env.get("HPTUNE_WORKER_JOB_NAME"),
    )
