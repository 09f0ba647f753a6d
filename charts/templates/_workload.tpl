{{/*
The workload: the chief Job and the worker Job (workload: jobs, the default), or one JobSet holding
both as replicatedJobs (workload: jobset, charts/templates/jobset.yaml). The Jobs' metadata and
specs are written once, here, for both shapes.
*/}}

{{- define "hptune.inJobSet" -}}
{{- if eq (.Values.workload | default "jobs") "jobset" }}true{{ end }}
{{- end }}

{{/* The JobSet's name; its child Jobs are <jobset>-chief-0 and <jobset>-worker-0. */}}
{{- define "hptune.jobset" -}}
{{ include "hptune.fullname" . }}{{ include "hptune.searchSuffix" . }}
{{- end }}

{{/* Kueue's labels, on whichever object Kueue admits (each Job, or the JobSet). */}}
{{- define "hptune.kueueLabels" -}}
{{- with .Values.kueue.queueName }}
kueue.x-k8s.io/queue-name: {{ . | quote }}
{{- end }}
{{- with .Values.kueue.priorityClass }}
kueue.x-k8s.io/priority-class: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Refuse values that the chosen workload does not use, naming them. */}}
{{- define "hptune.checkWorkload" -}}
{{- $jobset := include "hptune.inJobSet" . }}
{{- if and (not $jobset) (ne (int .Values.jobset.maxRestarts) 2) }}
{{- fail (printf "jobset.maxRestarts (%v) applies only to workload: jobset; the plain Jobs restart pods with chief.backoffLimit and worker.backoffLimitPerIndex. Set workload: jobset or remove jobset.maxRestarts" .Values.jobset.maxRestarts) }}
{{- end }}
{{- if and (not $jobset) .Values.jobset.restartStrategy }}
{{- fail (printf "jobset.restartStrategy (%s) applies only to workload: jobset" .Values.jobset.restartStrategy) }}
{{- end }}
{{- if and .Values.kueue.minWorkers (not .Values.kueue.queueName) }}
{{- fail (printf "kueue.minWorkers (%v) needs kueue.queueName: partial admission is Kueue's" .Values.kueue.minWorkers) }}
{{- end }}
{{- if and .Values.kueue.minWorkers $jobset }}
{{- fail (printf "kueue.minWorkers (%v) applies only to workload: jobs (Kueue admits a JobSet whole)" .Values.kueue.minWorkers) }}
{{- end }}
{{- if gt (int .Values.kueue.minWorkers) (include "hptune.workers" . | int) }}
{{- fail (printf "kueue.minWorkers (%v) is more than spec.distribution.workers (%v)" .Values.kueue.minWorkers (include "hptune.workers" .)) }}
{{- end }}
{{- if and .Values.kueue.priorityClass (not .Values.kueue.queueName) }}
{{- fail (printf "kueue.priorityClass (%s) needs kueue.queueName: Kueue admits only workloads sent to a LocalQueue" .Values.kueue.priorityClass) }}
{{- end }}
{{- end }}

{{/* The chief Job's labels and annotations (on the Job, or its replicatedJob template). */}}
{{- define "hptune.chiefJobMeta" -}}
{{- $tuner := (.Values.spec.spec | default dict).tuner | default dict }}
{{- $output := (.Values.spec.spec | default dict).output | default dict }}
labels:
  {{- include "hptune.labels" . | nindent 2 }}
  app.kubernetes.io/component: chief
  {{- if not (include "hptune.inJobSet" .) }}
  {{- with include "hptune.kueueLabels" . }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with .Values.chief.labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  # Read by `hptune status`; the chief adds its progress (hptune.io/trials-done, ...).
  hptune.io/search: {{ .Values.spec.metadata.name | quote }}
  hptune.io/worker-job: {{ include "hptune.workerJob" . | quote }}
  {{- if include "hptune.inJobSet" . }}
  hptune.io/jobset: {{ include "hptune.jobset" . | quote }}
  {{- end }}
  {{- if hasKey $tuner "maxTrials" }}
  hptune.io/max-trials: {{ $tuner.maxTrials | int | quote }}
  {{- end }}
  hptune.io/output: {{ $output.uri | default "" | quote }}
  # The spec this search runs; an upgrade that changes it is refused (hptune.checkSpecChange).
  hptune.io/spec-checksum: {{ include "hptune.specChecksum" . | quote }}
  {{- with .Values.chief.annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "hptune.chiefJobSpec" -}}
completions: 1
parallelism: 1
backoffLimit: {{ .Values.chief.backoffLimit }}
podFailurePolicy:
  {{- include "hptune.podFailurePolicy.chief" . | nindent 2 }}
{{- include "hptune.jobTail" (dict "root" . "role" "chief") }}
{{- end }}

{{- define "hptune.workerJobMeta" -}}
labels:
  {{- include "hptune.labels" . | nindent 2 }}
  app.kubernetes.io/component: worker
  {{- if not (include "hptune.inJobSet" .) }}
  {{- with include "hptune.kueueLabels" . }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- end }}
  {{- with .Values.worker.labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  hptune.io/spec-checksum: {{ include "hptune.specChecksum" . | quote }}
  {{- if and .Values.kueue.minWorkers (not (include "hptune.inJobSet" .)) }}
  # Kueue may admit the search with this many workers when quota for all is not free.
  kueue.x-k8s.io/job-min-parallelism: {{ .Values.kueue.minWorkers | int | quote }}
  {{- end }}
  {{- with .Values.worker.annotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* Worker k runs as tuner<k> (from JOB_COMPLETION_INDEX): a restarted worker keeps its id and
takes back its trial. Exit codes and what they do: charts/templates/_exitcodes.tpl. */}}
{{- define "hptune.workerJobSpec" -}}
{{- $workers := include "hptune.workers" . | int }}
completionMode: Indexed
completions: {{ $workers }}
parallelism: {{ $workers }}
backoffLimitPerIndex: {{ .Values.worker.backoffLimitPerIndex }}
# A worker exits 0 when it has no trial left to run: released as soon as the search has none left to
# hand out (spec.distribution.spareWorkers aside), its GPU freed while the last trials still run, or
# told the search is over. Each index completes on its own, so no successPolicy: the first worker to
# exit 0 must not end the others' trials. A worker still Pending when the search ends starts, reads
# that the search is over and exits 0.
podFailurePolicy:
  {{- include "hptune.podFailurePolicy.worker" . | nindent 2 }}
{{- include "hptune.jobTail" (dict "root" . "role" "worker") }}
{{- end }}

{{/* What both Jobs end with: the deadline, the TTL (the JobSet's own in a JobSet) and the pod
template of the role ("chief" or "worker"). */}}
{{- define "hptune.jobTail" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $roleValues := index $root.Values $role }}
{{- if $root.Values.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ $root.Values.activeDeadlineSeconds }}
{{- end }}
{{- if and $root.Values.ttlSecondsAfterFinished (not (include "hptune.inJobSet" $root)) }}
ttlSecondsAfterFinished: {{ $root.Values.ttlSecondsAfterFinished }}
{{- end }}
template:
  metadata:
    labels:
      {{- include "hptune.labels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ $role }}
      {{- with merge (deepCopy ($roleValues.podLabels | default dict)) ($root.Values.podLabels | default dict) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    annotations:
      hptune.io/spec-checksum: {{ include "hptune.specChecksum" $root | quote }}
      {{- with merge (deepCopy ($roleValues.podAnnotations | default dict)) ($root.Values.podAnnotations | default dict) }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  spec:
    {{- include "hptune.podSpec" (dict "root" $root "role" $role) | trim | nindent 4 }}
{{- end }}
