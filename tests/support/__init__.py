"""What the tests share that is not a fixture (fixtures live in the conftest.py of their tier):

- `specs.py`: `BASE_SPEC` (a small search on the bundled digits data), `merge`, `WRONG_MODEL`
- `commands.py`: the hptune command as a child process, and its environment
- `processes.py`: real chief and worker processes on loopback (start, kill, read logs)
- `chaos.py`: chaos runs (a fault at a seeded moment) and the checks every run must pass
- `coordination.py`: the coordinator driven as workers drive it, on a fake clock
- `outputs.py`: a search's output written by hand, for the readers of it
- `moto_s3.py`: moto's S3 API on loopback, with faults on chosen requests
- `prometheus.py`: a real Prometheus server and Pushgateway, and PromQL queries against them
- `charts.py`: the chart's CI scenarios rendered by the Helm engine, and lookups into them
- `crd_schema.py`: rendered custom resources against upstream CRD schemas
- `spec_yaml.py`: spec documents written as YAML the way hptune reads them
- `plain_keras_tuner.py`: an unmodified Keras Tuner script, run as a process
"""
