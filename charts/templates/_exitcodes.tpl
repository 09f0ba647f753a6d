{{/*
Generated from job/errors.py (EXIT_CODES) by scripts/render_manifests.py: do not edit.
The podFailurePolicy of the chief Job and of the worker Job. Evictions and preemptions
(DisruptionTarget) are ignored; then, by exit code:
    0  chief: Complete  worker: Complete  success (a worker: no trial left for it, or the search is over)
    1  chief: Count     worker: Count     infrastructure failed (storage, a port, the API); may work later
    2  chief: FailJob   worker: FailIndex bad input (spec, environment, data, model code, a storage location that refuses us)
    3  chief: FailJob   worker: FailJob   the search failed for good (or had already failed)
    4  chief: Count     worker: Ignore    a worker found no chief within chiefWaitSeconds (it is restarted, its index kept)
  130  chief: Count     worker: Count     stopped by a signal (SIGTERM at a deadline, Ctrl-C)
*/}}
{{- define "hptune.podFailurePolicy.chief" -}}
rules:
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"
  - action: FailJob
    onExitCodes:
      containerName: hptune
      operator: In
      values: [2, 3]
{{- end }}
{{- define "hptune.podFailurePolicy.worker" -}}
rules:
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"
  - action: FailJob
    onExitCodes:
      containerName: hptune
      operator: In
      values: [3]
  - action: FailIndex
    onExitCodes:
      containerName: hptune
      operator: In
      values: [2]
  - action: Ignore
    onExitCodes:
      containerName: hptune
      operator: In
      values: [4]
{{- end }}
