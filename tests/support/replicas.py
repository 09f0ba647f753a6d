"""One trial trained through `run_trial`, on one device or data parallel over several CPU devices
(`python -m tests.support.replicas DEVICES`): the same initial weights, batches in the same order
and the same global batch, so both must reach the same metrics. Run in a child process per
device count: the device count is fixed before the backend starts (XLA's forced host device count
on JAX, TensorFlow's logical CPUs)."""

from __future__ import annotations

import json
import os
import sys

DEVICES = int(sys.argv[1]) if __name__ == "__main__" else 1
if __name__ == "__main__" and DEVICES > 1 and os.environ.get("KERAS_BACKEND") == "jax":
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES}"

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402

from job.spec import validate_spec  # noqa: E402
from job.training import device  # noqa: E402
from job.training.data import load_dataset  # noqa: E402
from job.training.space import make_builder  # noqa: E402
from job.training.trial import run_trial  # noqa: E402
from tests.support.fused import InOrder  # noqa: E402
from tests.support.specs import BASE_SPEC, merge  # noqa: E402

SPLIT = 4  # both runs cut the data to a multiple of 4, as 4 devices need


def trained(devices: int) -> dict[str, object]:
    if devices > 1 and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    job = validate_spec(
        merge(BASE_SPEC, {"spec": {"training": {"epochs": 3, "batchSize": 64}, "tuner": {"maxTrials": 1}}})
    )
    arrays = load_dataset(job.spec.data, None, None)
    replicas = device.data_parallel(devices, platform="cpu") if devices > 1 else None
    cut = device.split_evenly(arrays, SPLIT)
    data = InOrder(cut.x_train, cut.y_train, cut.x_val, cut.y_val, cut.num_classes, cut.description)
    build = make_builder(job, data.output_units, data.input_shape, None)
    hp = kt.HyperParameters()
    hp.values = {"hidden1": 32, "dropout1": 0.0, "learning_rate": 0.01}
    keras.utils.set_random_seed(1)
    outcome = run_trial(hp, build, data, job.spec.training, job.spec.tuner.objective, replicas=replicas)
    assert outcome.ok, outcome.error
    return {
        "devices": list(replicas.devices) if replicas else ["one"],
        "train": len(data.x_train),
        "history": outcome.history[0],
    }


if __name__ == "__main__":
    print("RESULT " + json.dumps(trained(DEVICES)))
