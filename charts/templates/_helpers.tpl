{{/* The chart name, or nameOverride. */}}
{{- define "hptune.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object name. Kept to 50 characters so "<prefix>-worker" and the worker pods'
"<job>-<index>-<suffix>" hostnames stay valid DNS labels.
*/}}
{{- define "hptune.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "hptune.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: the release's pods, whatever their role. */}}
{{- define "hptune.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hptune.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hptune.labels" -}}
helm.sh/chart: {{ include "hptune.chart" . }}
{{ include "hptune.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hptune
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* "-<newSearch>" when newSearch is set: a new search gets new Jobs (their pod templates cannot change). */}}
{{- define "hptune.searchSuffix" -}}
{{- with .Values.newSearch }}-{{ . }}{{ end }}
{{- end }}

{{/* The Jobs' names: the chart's own, or those the JobSet controller gives its child Jobs. */}}
{{- define "hptune.chiefJob" -}}
{{- if include "hptune.inJobSet" . -}}
{{ include "hptune.jobset" . }}-chief-0
{{- else -}}
{{ include "hptune.fullname" . }}-chief{{ include "hptune.searchSuffix" . }}
{{- end -}}
{{- end }}

{{- define "hptune.workerJob" -}}
{{- if include "hptune.inJobSet" . -}}
{{ include "hptune.jobset" . }}-worker-0
{{- else -}}
{{ include "hptune.fullname" . }}-worker{{ include "hptune.searchSuffix" . }}
{{- end -}}
{{- end }}

{{/* The job spec as the pods read it, and its checksum: a changed spec is a new ConfigMap. */}}
{{- define "hptune.specText" -}}
{{ toYaml .Values.spec }}
{{- end }}

{{- define "hptune.specChecksum" -}}
{{ include "hptune.specText" . | sha256sum | trunc 16 }}
{{- end }}

{{- define "hptune.specConfigMap" -}}
{{ include "hptune.fullname" . }}-spec-{{ include "hptune.specChecksum" . | trunc 8 }}
{{- end }}

{{/*
Refuse an upgrade that changes a running search's spec: its pods would train on the new spec while
its chief refuses it (the output holds the old search). The chief Job found in the cluster carries
the checksum of the spec it runs. A new search is explicit: set newSearch (new Jobs).
*/}}
{{- define "hptune.checkSpecChange" -}}
{{- $running := lookup "batch/v1" "Job" .Release.Namespace (include "hptune.chiefJob" .) }}
{{- if $running }}
{{- $was := index ($running.metadata.annotations | default dict) "hptune.io/spec-checksum" | default "" }}
{{- if and $was (ne $was (include "hptune.specChecksum" .)) }}
{{- fail (printf "the job spec changed (checksum %s, running %s) while the search %s runs: a running search's spec cannot change. To start a new search, set newSearch to a new value (e.g. --set newSearch=2) and a new spec.spec.output.uri, or helm uninstall %s first" (include "hptune.specChecksum" .) $was (include "hptune.chiefJob" .) .Release.Name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The headless Service in front of the chief pod; workers resolve it. */}}
{{- define "hptune.chiefService" -}}
{{ include "hptune.fullname" . }}-chief
{{- end }}

{{/* The chief's DNS name: the Service's short name (same namespace), or its FQDN with
clusterDomain. In a JobSet: the chief pod's own name in the JobSet's headless Service,
<jobset>-chief-0-0.<jobset>. */}}
{{- define "hptune.chiefHost" -}}
{{- $name := include "hptune.chiefService" . }}
{{- if include "hptune.inJobSet" . }}
{{- $name = printf "%s-chief-0-0.%s" (include "hptune.jobset" .) (include "hptune.jobset" .) }}
{{- end }}
{{- if .Values.clusterDomain -}}
{{ $name }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- else -}}
{{ $name }}
{{- end -}}
{{- end }}

{{- define "hptune.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hptune.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hptune.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The spec's sections, with the spec's own defaults where a key is absent. */}}
{{- define "hptune.distribution" -}}
{{- $spec := .Values.spec.spec | default dict }}
{{- $dist := $spec.distribution | default dict }}
workers: {{ hasKey $dist "workers" | ternary $dist.workers 2 | int }}
oraclePort: {{ hasKey $dist "oraclePort" | ternary $dist.oraclePort 8000 | int }}
bindAddress: {{ hasKey $dist "bindAddress" | ternary $dist.bindAddress "0.0.0.0" | quote }}
trialsPerGpu: {{ hasKey $dist "trialsPerGpu" | ternary $dist.trialsPerGpu 1 | int }}
gpusPerTrial: {{ hasKey $dist "gpusPerTrial" | ternary $dist.gpusPerTrial 1 | int }}
{{- $metrics := $spec.metrics | default dict }}
metricsPort: {{ hasKey $metrics "port" | ternary $metrics.port 9090 | int }}
{{- end }}

{{/* Trial processes in one worker pod: one per gpusPerTrial GPUs of gpu.count (one on a CPU pod),
trialsPerGpu on each; gpu.count must be a multiple of gpusPerTrial. */}}
{{- define "hptune.trialProcesses" -}}
{{- $dist := include "hptune.distribution" . | fromYaml }}
{{- $count := int .Values.gpu.count }}
{{- $perTrial := int $dist.gpusPerTrial }}
{{- if and $count (mod $count $perTrial) }}
{{- fail (printf "gpu.count (%d) must be a multiple of spec.spec.distribution.gpusPerTrial (%d): each trial process trains on %d GPUs" $count $perTrial $perTrial) }}
{{- end }}
{{- mul (max 1 (div $count $perTrial)) ($dist.trialsPerGpu | int) }}
{{- end }}

{{- define "hptune.workers" -}}
{{ (include "hptune.distribution" . | fromYaml).workers }}
{{- end }}

{{- define "hptune.oraclePort" -}}
{{ (include "hptune.distribution" . | fromYaml).oraclePort }}
{{- end }}

{{- define "hptune.metricsPort" -}}
{{ (include "hptune.distribution" . | fromYaml).metricsPort }}
{{- end }}

{{/*
Where the output lives, as "url", "shared" (a path on outputVolume.claimName, mounted in every pod)
or "chief" (a path on the chart's own claim, mounted on the chief alone: spec.output.viaChief has
the workers send their results through the chief). Refuses an output no pod can share.
*/}}
{{- define "hptune.outputKind" -}}
{{- $output := (.Values.spec.spec | default dict).output | default dict }}
{{- $uri := $output.uri | default "" }}
{{- $path := trimPrefix "file://" $uri }}
{{- if and (not (hasPrefix "file://" $uri)) (regexMatch "^[a-zA-Z][a-zA-Z0-9+.-]*://" $uri) }}url
{{- else }}
{{- if not (or .Values.outputVolume.claimName $output.viaChief) }}
{{- fail (printf "spec.spec.output.uri %q is a path on the pod's own disk, which the chief and the workers do not share: set spec.spec.output.viaChief: true (the chief keeps the output on a claim of the chart's own, the workers send their results through it), or set outputVolume.claimName (a claim every pod mounts) and a path under outputVolume.mountPath (%s), or use an object store (s3://..., gs://...)" $uri .Values.outputVolume.mountPath) }}
{{- end }}
{{- $kind := "chief" }}
{{- $where := "the chart mounts the chief's output claim" }}
{{- with .Values.outputVolume.claimName }}
{{- $kind = "shared" }}
{{- $where = printf "the claim %q is mounted" . }}
{{- end }}
{{- if not (hasPrefix (printf "%s/" (trimSuffix "/" .Values.outputVolume.mountPath)) $path) }}
{{- fail (printf "spec.spec.output.uri %q is not under outputVolume.mountPath %q, where %s" $uri .Values.outputVolume.mountPath $where) }}
{{- end }}
{{- $kind }}
{{- end }}
{{- end }}

{{- define "hptune.checkOutput" -}}
{{- $_ := include "hptune.outputKind" . }}
{{- end }}

{{/*
The claim the output is on for a role, or nothing. Call with (dict "root" $ "role" "chief"|"worker").
*/}}
{{- define "hptune.outputClaim" -}}
{{- $kind := include "hptune.outputKind" .root }}
{{- if .root.Values.outputVolume.claimName }}{{ .root.Values.outputVolume.claimName }}
{{- else if and (eq $kind "chief") (eq .role "chief") }}{{ include "hptune.fullname" .root }}-output
{{- end }}
{{- end }}
