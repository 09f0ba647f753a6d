"""The output format: what a search leaves under `spec.output.uri`, written and read in one place.

- `layout.py`: the key of every artifact (search.json, state/, trials/, best/, ...) and their parser
- `records.py`: a trial's record (trials/<id>/trial.json), its status, the values it shows
- `attempts.py`: a worker's staged attempt, published by the chief as the trial's own
- `leaderboard.py`: leaderboard.csv, written from the trials and read back by column name
- `manifest.py`: best/manifest.json, written last and verified by every reader
- `reading.py`: a whole search read back (`load_results`), for `hptune show` and the report
"""
