"""The chief's gRPC server: Keras Tuner's oracle service, plus a small control service.

Workers speak Keras Tuner's own `keras_tuner.Oracle` protocol (so the wire format is the one the
`KERASTUNER_*` convention implies), with their id in the call metadata. The `hptune.Control`
service adds what that protocol lacks: lease heartbeats that carry the running trial's latest
epoch metrics, and the error text of a failed trial. Its messages are JSON.

A worker whose calls carry no id metadata is a plain Keras Tuner worker: the coordinator gives it
the plain lease and writes its trial records itself. Plain Keras Tuner asks again at once when told
IDLE, so an IDLE answer is held back (up to `IDLE_WAIT_SECONDS`, or until the search changes)
rather than letting an idle worker spin the chief.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc

from job.errors import InfrastructureError, SearchFailed
from job.kt_adapter import HyperParameters, Status, new_trial, service, service_grpc, trial_from_proto
from job.search.coordinator import Coordinator
from job.storage import ArtifactStore
from job.wire.artifacts import ArtifactService
from job.wire.protocol import (
    CONTROL_SERVICE,
    GIVE_BACK,
    HAND_OVER,
    HEARTBEAT,
    TRIAL_MESSAGE,
    decode_json,
    encode_json,
    tuner_id_of,
)

log = logging.getLogger(__name__)

IDLE_WAIT_SECONDS = 1.0  # the longest an IDLE answer is held back
SERVER_THREADS = 64  # idle workers each hold a thread for up to IDLE_WAIT_SECONDS


class ServeError(InfrastructureError):
    """The chief cannot serve (for example, its port is taken)."""


class OracleService(service_grpc.OracleServicer):
    """Keras Tuner's oracle protocol, answered by the coordinator."""

    def __init__(self, coordinator: Coordinator, idle_wait_seconds: float = IDLE_WAIT_SECONDS) -> None:
        self.coordinator = coordinator
        self.idle_wait_seconds = idle_wait_seconds
        self.messages: dict[str, str] = {}
        self.lock = threading.Lock()

    def GetSpace(self, request: Any, context: grpc.ServicerContext) -> Any:
        return service.GetSpaceResponse(hyperparameters=self.coordinator.get_space().to_proto())

    def UpdateSpace(self, request: Any, context: grpc.ServicerContext) -> Any:
        hps = HyperParameters.from_proto(request.hyperparameters)
        self.coordinator.update_space(hps)
        return service.UpdateSpaceResponse()

    def CreateTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        plain = tuner_id_of(context) is None
        deadline = time.monotonic() + self.idle_wait_seconds
        try:
            while True:
                version = self.coordinator.version
                trial = self.coordinator.create_trial(request.tuner_id, plain=plain)
                left = deadline - time.monotonic()
                if trial.status != Status.IDLE or left <= 0 or not context.is_active():
                    break
                self.coordinator.wait_for_change(version, left)  # a trial may end or come back
        except SearchFailed as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(err))
        return service.CreateTrialResponse(trial=trial.to_proto())

    def UpdateTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        trial = self.coordinator.update_trial(
            tuner_id_of(context), request.trial_id, dict(request.metrics), step=request.step
        )
        if trial is None:  # a stale report: tell the worker the trial is not its own any more
            trial = new_trial(self.coordinator.get_space(), Status.INVALID, trial_id=request.trial_id)
        return service.UpdateTrialResponse(trial=trial.to_proto())

    def EndTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        trial = trial_from_proto(request.trial)
        with self.lock:
            message = self.messages.pop(trial.trial_id, None)
        if message:
            trial.message = message
        self.coordinator.end_trial(tuner_id_of(context), trial)
        return service.EndTrialResponse()

    def GetTrial(self, request: Any, context: grpc.ServicerContext) -> Any:
        return service.GetTrialResponse(trial=self.coordinator.get_trial(request.trial_id).to_proto())

    def GetBestTrials(self, request: Any, context: grpc.ServicerContext) -> Any:
        trials = self.coordinator.get_best_trials(request.num_trials)
        return service.GetBestTrialsResponse(trials=[t.to_proto() for t in trials])

    # -- hptune.Control ----------------------------------------------------------------------

    def heartbeat(self, request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        keep = self.coordinator.heartbeat(
            str(request["tunerId"]),
            str(request["trialId"]),
            int(request.get("epoch", 0)),
            {str(k): float(v) for k, v in (request.get("logs") or {}).items()},
        )
        pruned = self.coordinator.pruned(str(request["trialId"]))
        if pruned is None:
            return {"keep": keep}
        return {"keep": keep, "prune": {"epoch": pruned.epoch, "reason": pruned.reason}}

    def give_back(self, request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        return {"requeued": self.coordinator.give_back(str(request["tunerId"]), str(request["trialId"]))}

    def hand_over(self, request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        self.coordinator.hand_over_checkpoint(str(request["tunerId"]), str(request["trialId"]))
        return {}

    def trial_message(self, request: dict[str, Any], context: grpc.ServicerContext) -> dict[str, Any]:
        with self.lock:
            self.messages[str(request["trialId"])] = str(request["message"])
        return {}


def control_handler(servicer: OracleService) -> grpc.GenericRpcHandler:
    def method(fn: Any) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=decode_json, response_serializer=encode_json
        )

    return grpc.method_handlers_generic_handler(
        CONTROL_SERVICE,
        {
            HEARTBEAT: method(servicer.heartbeat),
            TRIAL_MESSAGE: method(servicer.trial_message),
            GIVE_BACK: method(servicer.give_back),
            HAND_OVER: method(servicer.hand_over),
        },
    )


def start_server(
    coordinator: Coordinator, address: str, port: int, artifacts: ArtifactStore | None = None
) -> tuple[grpc.Server, int]:
    """Serve the oracle and control services; with `artifacts` (spec.output.viaChief), also the
    workers' reads and writes of that store."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS, thread_name_prefix="oracle"))
    servicer = OracleService(coordinator)
    service_grpc.add_OracleServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers((control_handler(servicer),))
    if artifacts is not None:
        server.add_generic_rpc_handlers((ArtifactService(artifacts).handler(),))
    host = f"[{address}]" if ":" in address else address
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err}") from None
    if bound == 0:
        raise ServeError(
            f"cannot listen on {host}:{port} (in use, or not an address of this host); "
            "set spec.distribution.oraclePort / bindAddress or KERASTUNER_ORACLE_PORT"
        )
    server.start()
    log.info("oracle listening on %s:%d", host, bound)
    return server, bound


def serve_oracle(
    coordinator: Coordinator,
    address: str,
    port: int,
    linger_seconds: float,
    tick: float = 0.5,
    should_stop: Callable[[], bool] = lambda: False,
    startup_timeout: float = 0.0,
    artifacts: ArtifactStore | None = None,
) -> None:
    """Serve until the search is over and every live worker has been told to stop (or, at once,
    until `should_stop` says so). With a `startup_timeout`, a search that no worker reached in
    that time fails (workers Pending for GPUs would otherwise keep the chief waiting forever)."""
    server, _ = start_server(coordinator, address, port, artifacts)
    started, finished_at = time.monotonic(), None
    try:
        while not should_stop():
            if startup_timeout and not coordinator.last_seen and time.monotonic() - started > startup_timeout:
                coordinator.fail(
                    f"no worker reached the chief within {startup_timeout:g} s "
                    "(spec.distribution.startupTimeoutSeconds): are the worker pods Pending for GPUs? "
                    "(kubectl get pods; kubectl describe pod shows why)"
                )
                break
            coordinator.expire_leases()
            if coordinator.finished:
                finished_at = finished_at or time.monotonic()
                if coordinator.all_told_to_stop():
                    break
                if time.monotonic() - finished_at > linger_seconds:
                    log.warning(
                        "workers %s were not told to stop within %.0f s; ending anyway",
                        sorted(coordinator.live_workers() - coordinator.told_to_stop),
                        linger_seconds,
                    )
                    break
            time.sleep(tick)
    finally:
        server.stop(grace=2).wait()
