"""Process supervision: the program's own child processes. Nothing here imports Keras, Keras
Tuner or a backend (an import-linter contract in pyproject.toml keeps it so), so a supervisor never
starts a backend of its own.

- `processes.py`: starting, relaying and stopping child processes; free ports
- `local.py`: `hptune local`, a chief and N workers as local processes
- `packing.py`: a worker's trial processes: one per GPU (or gpusPerTrial GPUs), trialsPerGpu on each
- `gpus.py`: the GPUs a process may use, found through NVML without starting a backend
- `placement.py`: which process gets which GPUs (workers over a machine, trial processes over a worker)
- `recycle.py`: a worker that outgrows its memory restarts itself between trials
"""
