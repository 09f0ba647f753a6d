"""spec.training, spec.output, spec.distribution and spec.metrics: how trials train, where results
go, how chief and workers run, and what Prometheus sees."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from job.spec.base import BUCKET_SCHEMES, OUTPUT_SCHEMES, SpecModel, field_error, http_url, no_password
from job.spec.model import Count


class EarlyStopping(SpecModel):
    monitor: str = "val_loss"
    patience: int = Field(3, ge=0)
    min_delta: float = Field(0.0, ge=0)


class ReduceLrOnPlateau(SpecModel):
    """Keras' ReduceLROnPlateau: the learning rate multiplied by `factor` once `monitor` has not
    improved by `minDelta` for `patience` epochs, then left alone for `cooldown` epochs."""

    monitor: str = Field("val_loss", description="A metric the model reports (its val_ form included).")
    factor: float = Field(0.5, gt=0, lt=1, description="What the rate is multiplied by at a plateau.")
    patience: int = Field(2, ge=0, description="Epochs without improvement before the rate falls.")
    min_delta: float = Field(1e-4, ge=0, description="The least change that counts as an improvement.")
    cooldown: int = Field(0, ge=0, description="Epochs after a fall before the count starts again.")
    min_lr: float = Field(0.0, ge=0, description="The rate never falls below this.")


class TrainingSpec(SpecModel):
    epochs: Count = Field(
        2,
        description="Epochs each trial trains for, or the name of an int hyperparameter (not with "
        "hyperband, which schedules epochs itself).",
    )
    batch_size: Count = Field(
        32,
        description="Samples per training step, or the name of an int hyperparameter (an int choice or "
        "range). Streamed data (tf.data, PyDataset) comes batched: then it is not used.",
    )
    early_stopping: EarlyStopping | None = None
    reduce_lr_on_plateau: ReduceLrOnPlateau | None = Field(
        None,
        description="Lower the learning rate when a metric stops improving (Keras' ReduceLROnPlateau); "
        "its count comes back with a trial's checkpoint. Not with model.learningRateSchedule, which "
        "sets the rate itself; trials that use it are not fused.",
    )
    verbose: Literal[0, 1, 2] = Field(0, description="Keras fit verbosity inside each trial.")
    # The fast trial path: none of these changes what a trial learns, only how fast it runs.
    steps_per_execution: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="Training steps per compiled call; auto: up to 256 (fewer calls, same updates).",
    )
    validation_batch_size: int | None = Field(
        1024,
        ge=1,
        description="Batch size for the per-epoch validation pass (evaluation only); null: batchSize.",
    )
    jit_compile: bool | Literal["auto"] = Field(
        "auto", description="XLA compilation of the train step; auto lets Keras decide per backend."
    )
    mixed_precision: bool = Field(
        False, description="mixed_float16 compute on GPUs (float32 weights); off on CPUs."
    )
    checkpoint_seconds: float | None = Field(
        60.0,
        ge=0,
        le=86400,
        description="A running trial's checkpoint (weights, optimizer, epoch, early stopping) is written "
        "at the end of an epoch at most this often, so a trial that loses its worker continues from "
        "it on the next; a stop signal (SIGTERM) lets the training call in progress end and writes "
        "the trial as it is there, mid-epoch included (the last finished epoch if the call takes "
        "over 10 s); with "
        "checkpoints on, each epoch's data order is drawn from the trial and the epoch, so a resumed "
        "trial sees the batches it would have; 0: every epoch; null: never (a lost trial starts "
        "again from epoch 1).",
    )
    scan_steps: bool | Literal["auto"] = Field(
        "auto",
        description="JAX: run each call's steps in one compiled lax.scan, one dispatch instead of one "
        "per batch (same updates); auto: on GPUs and TPUs, where dispatch dominates small models.",
    )


class OutputSpec(SpecModel):
    uri: str | None = Field(
        None, description="Local path, file://, s3:// or gs://. Default ./hptune-output/<name>."
    )
    keep_models: int = Field(3, ge=1, description="Keep trial models for the best k trials only.")
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint (MinIO, Ceph); AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL "
        "in the environment work too.",
    )
    retry_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a storage operation is retried on transient errors (connection refused, "
        "timeouts, 5xx, throttling) before the job fails; 0 tries once.",
    )
    tensorboard: bool = Field(
        True,
        description="TensorBoard logs under tensorboard/ (the HParams dashboard: every trial's values, "
        "status and metrics per epoch), written by the chief as trials end; false: none.",
    )
    via_chief: bool = Field(
        False,
        description="Workers send their results (trial records, models) to the chief, which writes them: "
        "for an output only the chief can reach, such as a volume on the chief's pod. Otherwise "
        "every process writes to the output itself, which must then be shared (an object store).",
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        if value is None:
            return value
        no_password(value)
        if "://" not in value:
            return value
        scheme, rest = value.split("://", 1)
        if scheme not in OUTPUT_SCHEMES:
            raise ValueError(
                f"{value!r} has the unknown scheme {scheme}://; use a local path, file://, s3:// or gs://"
            )
        if scheme in BUCKET_SCHEMES and not rest.split("/", 1)[0]:
            raise ValueError(f"{value!r} names no bucket; use {scheme}://BUCKET/PREFIX")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            no_password(value)
            http_url(value)
        return value


class DistributionSpec(SpecModel):
    workers: int = Field(2, ge=1, description="Worker pods (or local worker processes), one GPU each.")
    trials_per_gpu: int = Field(
        1,
        ge=1,
        le=16,
        description="Trial processes packed on each worker's GPU, each with a 1/n share of its memory.",
    )
    gpus_per_trial: int = Field(
        1,
        ge=1,
        le=64,
        description="GPUs one trial trains on, data parallel (each batch split across them: "
        "Keras' DataParallel on JAX, MirroredStrategy on TensorFlow). A worker with G GPUs runs "
        "G / gpusPerTrial trial processes (times trialsPerGpu); it must divide G. The batch size must "
        "be a multiple of it.",
    )
    fuse_trials: Annotated[int, Field(ge=1, le=64)] | Literal["auto"] = Field(
        1,
        description="Trials of the built-in MLP a worker trains at once as one program (fused trials): "
        "each is an ordinary trial with its own lease, pruning and record. 1: one trial at a time; auto: "
        "measured on the search's own trials (groups of 2, doubled while the time per trial falls by "
        "10 %, up to 16). Not with hyperband or streamed data; custom builders and HyperModels run "
        "one at a time. Trials of different batch sizes, optimizer types or depths train in separate "
        "groups; a search whose model sets kernelInitializer, l1, l2, batchNorm, a tuned activation, "
        "optimizer settings (momentum, weightDecay, ...), a learningRateSchedule, or "
        "training.reduceLrOnPlateau runs its trials one at a time (the log says which).",
    )
    oracle_port: int = Field(8000, ge=1, le=65535)
    bind_address: str = Field("0.0.0.0", description="Address the chief's oracle listens on.")
    lease_seconds: float = Field(
        60.0, gt=0, description="A worker silent this long loses its trial to the queue."
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker renews its lease.")
    plain_worker_lease_seconds: float = Field(
        3600.0,
        gt=0,
        description="The lease of a trial on a plain Keras Tuner worker, which sends no heartbeats "
        "(any call it makes renews it): a plain worker silent this long loses its trial to the queue. "
        "Never shorter than leaseSeconds.",
    )
    chief_wait_seconds: float = Field(
        300.0, gt=0, description="How long a worker keeps trying to reach an absent chief."
    )
    max_worker_losses: int = Field(
        3,
        ge=1,
        description="A trial whose worker is lost this many times fails (it may be the cause).",
    )
    linger_seconds: float = Field(
        30.0, ge=0, description="How long a finished chief keeps telling workers to stop."
    )
    spare_workers: int = Field(
        0,
        ge=0,
        description="Idle workers kept once the search has no trial left to hand out, to take a trial "
        "that comes back to the queue (its worker lost); the others exit at once and free their GPUs. "
        "0: none kept: a trial that comes back is run by a worker still busy once it is free, or by the "
        "worker the Job (or `hptune local`) starts again in place of the one that died.",
    )
    restart_on_memory_growth: float = Field(
        0.08,
        ge=0,
        description="A worker whose resident memory has grown by this fraction since its first trial "
        "restarts itself between trials (same worker id; data loaded again); 0 never restarts.",
    )
    chief_gone_seconds: float = Field(
        900.0,
        gt=0,
        description="A worker that finds no chief, and no chief renewing its lease on the output for "
        "this long, takes the search as failed for good and leaves (exit 3).",
    )
    startup_timeout_seconds: float = Field(
        0.0,
        ge=0,
        description="The chief fails the search when no worker has reached it this long after it "
        "started (workers Pending for GPUs); 0: wait without limit.",
    )

    @model_validator(mode="after")
    def _check_heartbeat(self) -> DistributionSpec:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise field_error(
                "heartbeatSeconds",
                f"must be at most half of leaseSeconds ({self.lease_seconds}); got {self.heartbeat_seconds}",
            )
        return self


class PushgatewaySpec(SpecModel):
    url: str = Field(min_length=1, description="http(s)://host:port of the Pushgateway.")
    timeout_seconds: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        no_password(value)
        return value


class MetricsSpec(SpecModel):
    port: int = Field(9090, ge=0, le=65535, description="/metrics port; 0 turns the exporter off.")
    pushgateway: PushgatewaySpec | None = None
