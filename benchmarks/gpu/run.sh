#!/usr/bin/env bash
# Run on the GPU machine (JAX with CUDA, no TensorFlow, no internet), from the repository root, with
# .whl/ from fetch_wheels.sh and MNIST in ./.data/mnist.npz. Results go to $OUT (or ./gpu-results).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax HPTUNE_DATA_DIR="$PWD/.data" PYTHONUNBUFFERED=1
out="${OUT:-gpu-results}"; mkdir -p "$out"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; date -u; } > "$out/machine.txt"
python3 -m benchmarks.trial_throughput --trials 4 --rounds 2 --host-loop --json "$out/trial_throughput.json" \
  2>&1 | tee "$out/trial_throughput.txt"
python3 -m benchmarks.gpu_packing --packings 1 2 4 8 --trials-per-process 3 --json "$out/gpu_packing.json" \
  2>&1 | tee "$out/gpu_packing.txt"
# Fused groups on the GPU (JAX only here), with the GPU's busy fraction sampled meanwhile.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 500 > "$out/fused_busy.csv" &
busy=$!
python3 -m benchmarks.fused_trials --backends jax --trials 16 --groups 4,8,16 --json "$out/fused_trials.json" \
  2>&1 | tee "$out/fused_trials.txt"
kill "$busy"
# Every GPU of the machine: one worker on GPU 0, then one per GPU (trials per hour per GPU, busy).
python3 -m benchmarks.every_gpu --trials 16 --samples 20000 --json "$out/every_gpu.json" \
  2>&1 | tee "$out/every_gpu.txt"
