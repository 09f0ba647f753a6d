"""What people and Prometheus see of a search.

- `metrics.py`: the Prometheus metrics of chief and workers, their exporter and the Pushgateway
- `progress.py`: the live progress line on a terminal
- `show.py`: `hptune show URI`, the leaderboard and best model verified against its manifest
- `report/`: `hptune report URI`, the search as one self-contained HTML page of plots: the page
  (`page.py`), its plots (`plots.py`) and which hyperparameters mattered (`importance.py`)
"""
