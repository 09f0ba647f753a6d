"""Kubernetes: what the chief tells the cluster about its search, and `hptune status`.

- `api.py`: annotation names, timeouts, the API client, the retry policy for API calls
- `reporter.py`: `Reporter` (the protocol), `ClusterReporter` (annotations, Events, worker
  clean-up, from a background thread) and `NullReporter` outside a cluster
- `feed.py`: `TrialFeed`, from the chief's trials to reports
- `status.py`: `status_table`, a search's progress read through the user's kubeconfig

The Job and JobSet shapes themselves are rendered by the Helm chart (`charts/`).
"""
