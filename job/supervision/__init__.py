"""Process supervision: the program's own child processes. Nothing here imports Keras, Keras
Tuner or a backend (an import-linter contract in pyproject.toml keeps it so), so a supervisor never
starts a backend of its own.

- `processes.py`: starting, relaying and stopping child processes; free ports
- `local.py`: `hptune local`, a chief and N workers as local processes
- `packing.py`: several trial processes sharing one worker's GPU
- `recycle.py`: a worker that outgrows its memory restarts itself between trials
"""
