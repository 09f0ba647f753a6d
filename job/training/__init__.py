"""One trial: from hyperparameter values to a trained model and its metrics.

- `trial.py`: build, train and score one trial (early stopping, best epoch, failures as data)
- `space.py`: the search space from the spec, the built-in MLP, custom builders, HyperModels
- `data/`: datasets (built-in, custom loaders, image folders, tables) with their checks
- `imports.py`: the user's code a spec names, imported from the spec's directory
- `device.py`: data kept resident on the backend's device once per worker; the GPUs the backend
  sees (a process given GPUs that sees none stops); one trial data parallel over several devices
- `memory.py`: how a trial's error says it ran out of memory (an outcome, not a broken search)
- `jax_steps.py`: several training steps in one compiled program on JAX accelerators
"""
