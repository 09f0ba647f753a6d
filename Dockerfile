# hptune on TensorFlow's GPU image.
#   docker build -t hptune:0.1.0 .
#   docker run --gpus all --rm hptune:0.1.0 local /opt/hptune/examples/digits.yaml --output /tmp/out
# In Kubernetes the chart runs `hptune run /etc/hptune/spec.yaml` in every pod.
#
# The base image's TensorFlow (built against its CUDA and cuDNN) is kept exactly as it is: hptune
# itself is installed with --no-deps, then its other dependencies at the versions constraints.txt
# pins, and the build fails if TensorFlow's version changed or it no longer imports.
# BASE_IMAGE: another base with Python 3.11+, pip and this TensorFlow (CI builds a stand-in without
# CUDA from Debian packages: docs/containers.md).
ARG BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

ARG TENSORFLOW_VERSION=2.21.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=tensorflow \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/hptune
COPY pyproject.toml constraints.txt README.md ./
COPY job ./job
COPY examples ./examples

# requirements.txt: pyproject's dependencies (and the s3 and gcs extras: S3, MinIO, GCS with Workload
# Identity) less TensorFlow itself.
RUN python3 -c "import sys; assert sys.version_info >= (3, 11), 'hptune needs Python 3.11+, the base has ' + sys.version" \
    && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps = p['dependencies'] + p['optional-dependencies']['s3'] + p['optional-dependencies']['gcs']; print('\n'.join(d for d in deps if not d.startswith('tensorflow')))" > /tmp/requirements.txt \
    && python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -m pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && python3 -c "from importlib.metadata import version; v = version('tensorflow'); assert v == '${TENSORFLOW_VERSION}', 'TensorFlow changed to ' + v" \
    && python3 -c "import tensorflow, keras_tuner, job.cli, s3fs, gcsfs" \
    && groupadd --system --gid 10001 hptune \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/hptune --shell /usr/sbin/nologin hptune

# Numeric, so Kubernetes can check runAsNonRoot.
USER 10001:10001
WORKDIR /home/hptune
ENV HOME=/home/hptune

ENTRYPOINT ["hptune"]
CMD ["--help"]
