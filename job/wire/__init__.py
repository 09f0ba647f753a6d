"""The chief/worker wire, by the Keras Tuner convention (`KERASTUNER_TUNER_ID`,
`KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`): Keras Tuner's gRPC oracle protocol plus hptune's
own calls on the same port.

- `protocol.py`: what chief and workers agree on beyond Keras Tuner's protocol (metadata, control calls)
- `chief.py`: the chief's gRPC server: Keras Tuner's oracle service plus `hptune.Control`
- `artifacts.py`: the chief's `hptune.Artifacts` service (spec.output.viaChief), and what a worker may touch
- `remote.py`: a worker's connection to the chief, with retries and lease heartbeats
- `relay.py`: a worker's store that writes through the chief (spec.output.viaChief)
"""
