"""A worker's connection to the chief: Keras Tuner's oracle protocol with retries and heartbeats.

Every call is retried with exponential backoff while the chief is unreachable (restarting, not yet
up), for at most `chiefWaitSeconds` of continuous failure; then the worker gives up with a message
naming the address. While a trial runs, a heartbeat thread renews its lease.

A plain Keras Tuner chief answers hptune's own calls (heartbeat, error text) with UNIMPLEMENTED:
the worker notes it once (`plain_chief`), stops heartbeats, and reports through the plain protocol
alone (a failed trial ends FAILED, without its error text).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from job import retry
from job.errors import EXIT_CHIEF_UNREACHABLE, InfrastructureError, SearchFailed
from job.kt_adapter import HyperParameters, Status, Trial, new_trial, service, service_grpc, trial_from_proto
from job.retry import Backoff
from job.search.pruning import Pruned
from job.wire.protocol import (
    GIVE_BACK,
    HAND_OVER,
    HEARTBEAT,
    TRIAL_MESSAGE,
    TUNER_ID_KEY,
    decode_json,
    encode_json,
    method_path,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class ChiefUnreachable(InfrastructureError):
    """The chief could not be reached within the configured wait."""

    exit_code = EXIT_CHIEF_UNREACHABLE


class ChiefError(InfrastructureError):
    """The chief answered with an error."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class _SearchOver(Exception):
    """The chief is unreachable because the search it served has ended."""


@dataclass(frozen=True)
class Reply:
    """The chief's answer to a heartbeat: keep the trial or not, and whether to stop it early."""

    keep: bool
    pruned: Pruned | None = None


class _Heartbeat:
    def __init__(self, oracle: RemoteOracle, trial_id: str, synchronous: bool) -> None:
        self.oracle = oracle
        self.trial_id = trial_id
        # With pruning, each epoch's report waits for the chief's decision, so a pruned trial
        # stops at that epoch's boundary rather than the next.
        self.synchronous = synchronous
        self.epoch = 0
        self.logs: dict[str, float] = {}
        self._lost = False
        self._pruned: Pruned | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hptune-heartbeat", daemon=True)

    def report(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch, self.logs = epoch, dict(logs)
        if self.synchronous:
            self._send(timeout=1.0)
        else:
            self._wake.set()

    @property
    def lost(self) -> bool:
        return self._lost

    @property
    def pruned(self) -> Pruned | None:
        return self._pruned

    def confirm(self) -> bool:
        if not self.oracle.plain_chief:
            self._send()
        return not self._lost

    def _send(self, timeout: float | None = None) -> None:
        reply = self.oracle.send_heartbeat(self.trial_id, self.epoch, self.logs, timeout)
        if reply is None:
            return  # not delivered: the lease decides
        if not reply.keep:
            self._lost = True
        if reply.pruned is not None:
            self._pruned = reply.pruned

    def _loop(self) -> None:
        interval = self.oracle.heartbeat_seconds
        while not self._stop.is_set() and not self.oracle.plain_chief and not self._lost:
            self._send()
            self._wake.wait(interval)
            self._wake.clear()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.oracle.heartbeat_seconds + 5)


class RemoteOracle:
    def __init__(
        self,
        target: str,
        tuner_id: str,
        wait_seconds: float,
        heartbeat_seconds: float,
        call_timeout: float = 60.0,
        search_ended: Callable[[], bool] = lambda: False,
        pruning: bool = False,
    ) -> None:
        self.target = target
        self.pruning = pruning  # spec.tuner.pruning is set: epochs are reported synchronously
        # Asked while the chief is unreachable between trials: a chief that has finished the
        # search and left is not coming back (a worker that restarted or arrived late).
        self.search_ended = search_ended
        self.tuner_id = tuner_id
        self.wait_seconds = wait_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.call_timeout = call_timeout
        # While the chief is unreachable: waits of 0.5, 1, 2, ... up to 10 s, for wait_seconds.
        self.backoff = Backoff(seconds=wait_seconds, base_seconds=0.5, max_delay_seconds=10.0, jitter=0.2)
        # gRPC backs off reconnecting up to minutes after the chief was down; a restarted chief
        # must hear from its workers before their restored leases run out.
        self.channel = grpc.insecure_channel(
            target,
            options=[("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 1000)],
        )
        self.stub = service_grpc.OracleStub(self.channel)
        self._heartbeat = self.channel.unary_unary(
            method_path(HEARTBEAT),
            request_serializer=encode_json,
            response_deserializer=decode_json,
        )
        self._hand_over = self.channel.unary_unary(
            method_path(HAND_OVER),
            request_serializer=encode_json,
            response_deserializer=decode_json,
        )
        self._give_back = self.channel.unary_unary(
            method_path(GIVE_BACK),
            request_serializer=encode_json,
            response_deserializer=decode_json,
        )
        self._message = self.channel.unary_unary(
            method_path(TRIAL_MESSAGE),
            request_serializer=encode_json,
            response_deserializer=decode_json,
        )
        self.metadata = ((TUNER_ID_KEY, tuner_id),)
        self.plain_chief = False  # set at the first hptune-only call the chief does not know

    def _found_plain_chief(self) -> None:
        if not self.plain_chief:
            self.plain_chief = True
            log.warning(
                "%s: the chief at %s is a plain Keras Tuner chief (it does not know hptune's control "
                "calls): no heartbeats, so no lease; a failed trial is reported FAILED without its "
                "error text; this worker publishes its own trial records",
                self.tuner_id,
                self.target,
            )

    def close(self) -> None:
        self.channel.close()

    def member(self, tuner_id: str) -> RemoteOracle:
        """This connection, speaking as `tuner_id`: a fused group's member (job/training/fused.py)."""
        other = copy.copy(self)
        other.tuner_id = tuner_id
        other.metadata = ((TUNER_ID_KEY, tuner_id),)
        return other

    def call(self, name: str, call: Callable[..., T], request: Any, between_trials: bool = False) -> T:
        def transient(err: BaseException) -> bool:
            if not isinstance(err, grpc.RpcError) or err.code() not in RETRYABLE:
                return False
            # Between trials, a chief that finished the search and left is not coming back.
            return not (between_trials and self.search_ended())

        def warn(err: BaseException, delay: float) -> None:
            code = err.code().name if isinstance(err, grpc.RpcError) else type(err).__name__
            log.warning("chief at %s not reachable (%s); retrying in %.1f s", self.target, code, delay)

        try:
            return retry.call(
                lambda: call(request, timeout=self.call_timeout, metadata=self.metadata),
                self.backoff,
                transient,
                on_retry=warn,
            )
        except retry.GaveUp as gave_up:
            details = gave_up.error.details() if isinstance(gave_up.error, grpc.RpcError) else gave_up.error
            raise ChiefUnreachable(
                f"cannot reach the chief at {self.target} (KERASTUNER_ORACLE_IP:"
                f"KERASTUNER_ORACLE_PORT) for {self.wait_seconds:.0f} s "
                f"(spec.distribution.chiefWaitSeconds): {details}"
            ) from None
        except grpc.RpcError as err:
            code = err.code()
            if code in RETRYABLE:
                raise _SearchOver from None
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                raise SearchFailed(err.details()) from None
            raise ChiefError(
                f"the chief at {self.target} answered {name} with {code.name}: {err.details()}", code
            ) from None

    # -- the oracle protocol ---------------------------------------------------------------

    def create_trial(self, tuner_id: str) -> Trial:
        try:
            response = self.call(
                "CreateTrial",
                self.stub.CreateTrial,
                service.CreateTrialRequest(tuner_id=tuner_id),
                between_trials=True,
            )
        except _SearchOver:
            log.info("%s: the chief is gone and the search has ended (search.json)", self.tuner_id)
            return new_trial(HyperParameters(), Status.STOPPED)
        return trial_from_proto(response.trial)

    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        self.call(
            "UpdateTrial",
            self.stub.UpdateTrial,
            service.UpdateTrialRequest(trial_id=trial_id, metrics=metrics, step=step),
        )

    def end_trial(self, trial: Trial) -> None:
        if trial.message and not self.plain_chief:
            try:
                self.call(
                    "TrialMessage",
                    self._message,
                    {"tunerId": self.tuner_id, "trialId": trial.trial_id, "message": trial.message},
                )
            except ChiefError as err:
                if err.code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._found_plain_chief()
        if self.plain_chief and trial.status == Status.INVALID:
            # The error cannot reach a plain chief: a retry there would repeat it unexplained.
            trial.status = Status.FAILED
        self.call("EndTrial", self.stub.EndTrial, service.EndTrialRequest(trial=trial.to_proto()))

    def give_back(self, trial_id: str) -> bool:
        """Hand a trial back to the chief at once (this worker is stopping), so the next worker
        continues it from its last checkpoint without waiting for the lease to run out. Best
        effort, a few seconds at most: a plain chief, or no answer, leaves it to the lease."""
        if self.plain_chief:
            return False
        try:
            reply = self._give_back(
                {"tunerId": self.tuner_id, "trialId": trial_id}, timeout=5.0, metadata=self.metadata
            )
        except grpc.RpcError as err:
            log.warning(
                "%s: trial %s not handed back (%s); its lease will run out",
                self.tuner_id,
                trial_id,
                err.code(),
            )
            return False
        return bool(reply.get("requeued"))

    def hand_over(self, trial_id: str) -> None:
        """Before training a trial: have the chief publish the checkpoint of the worker that lost
        it, if any. A plain chief, or no answer, means the trial starts from epoch 1."""
        if self.plain_chief:
            return
        try:
            self._hand_over(
                {"tunerId": self.tuner_id, "trialId": trial_id},
                timeout=self.call_timeout,
                metadata=self.metadata,
            )
        except grpc.RpcError as err:
            log.warning("%s: trial %s: no checkpoint handed over (%s)", self.tuner_id, trial_id, err.code())

    def get_best_trials(self, num_trials: int) -> list[Trial]:
        response = self.call(
            "GetBestTrials",
            self.stub.GetBestTrials,
            service.GetBestTrialsRequest(num_trials=num_trials),
        )
        return [trial_from_proto(t) for t in response.trials]

    def get_space(self) -> HyperParameters:
        response = self.call("GetSpace", self.stub.GetSpace, service.GetSpaceRequest())
        return HyperParameters.from_proto(response.hyperparameters)

    # -- leases ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, trial_id: str) -> Iterator[_Heartbeat]:
        with _Heartbeat(self, trial_id, synchronous=self.pruning) as heartbeat:
            yield heartbeat

    def send_heartbeat(
        self, trial_id: str, epoch: int, logs: dict[str, float], timeout: float | None = None
    ) -> Reply | None:
        """The chief's reply (keep the trial? stop it early?), or None when it did not answer."""
        if self.plain_chief:
            return Reply(keep=True)
        request = {"tunerId": self.tuner_id, "trialId": trial_id, "epoch": epoch, "logs": logs}
        try:
            response = self._heartbeat(
                request, timeout=timeout or max(1.0, self.heartbeat_seconds), metadata=self.metadata
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                self._found_plain_chief()
                return Reply(keep=True)
            log.debug("heartbeat not delivered: %s", err.code())
            return None
        prune = response.get("prune")
        pruned = Pruned(int(prune["epoch"]), str(prune["reason"])) if isinstance(prune, dict) else None
        return Reply(keep=bool(response.get("keep", True)), pruned=pruned)
