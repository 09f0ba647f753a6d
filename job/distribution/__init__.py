"""Chief and workers, by the Keras Tuner convention (`KERASTUNER_TUNER_ID`, `KERASTUNER_ORACLE_IP`,
`KERASTUNER_ORACLE_PORT`).

- `wire.py`: what chief and workers agree on beyond Keras Tuner's protocol (metadata, control calls)
- `chief.py`: the chief's gRPC server: Keras Tuner's oracle service plus `hptune.Control`
- `remote.py`: a worker's connection to the chief, with retries and lease heartbeats
- `local.py`: `hptune local`, a chief and N workers as local processes
- `packing.py`: several trial processes sharing one worker's GPU
- `recycle.py`: a worker that outgrows its memory restarts itself between trials
- `processes.py`: starting, relaying and stopping child processes (no Keras import)
"""
