#!/usr/bin/env bash
# Run here (with internet to PyPI): the wheels a GPU machine with JAX but no TensorFlow needs to
# run hptune, for its Python 3.12 on x86-64, into .whl/ (ignored by git; carried to the device).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# Checked by running `hptune local` (packed, scanned steps) in a venv holding only what the device
# has (jax, grpcio, protobuf, h5py, rich, scikit-learn, prometheus-client) plus these.
pins=$(grep -E '^(keras|keras-tuner|kt-legacy|namex|optree|pydantic|pydantic_core|annotated-types|typing-inspection|PyYAML|fsspec|absl-py|packaging|six|typing_extensions|nvidia-ml-py)==' constraints.txt)
for pin in $pins; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$pin"
done
python3 -m pip wheel -q --no-deps -w .whl .
ls -la .whl
