"""The search: the chief's coordinator around a Keras Tuner oracle, and what it records.

- `coordinator.py`: leases, requeueing, ownership of results, a clean end on repeated failures
- `oracles.py`: the Keras Tuner oracle the spec names, keeping its state in memory
- `worker.py`: the trial loop: ask for a trial, train it, stage its record, report
- `snapshot.py`: the durable state a restarted chief resumes from, and search.json
- `retention.py`: which trial models are kept (the best keepModels), and saving a model
- `best.py`: best/ (model, hyperparameters, metrics, model card), complete or absent
- `pruning.py`: stopping trials early (median, asha), decided by the chief from heartbeats
- `ownership.py`: one live chief per output (a lease in state/owner.json)
"""
