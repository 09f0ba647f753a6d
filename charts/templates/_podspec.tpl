{{/*
The pod spec shared by the chief and the workers. Call with (dict "root" $ "role" "chief"|"worker").
*/}}
{{- define "hptune.podSpec" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $role := .role }}
{{- $outputClaim := include "hptune.outputClaim" . }}
{{- $roleValues := index $values $role }}
{{- $oraclePort := include "hptune.oraclePort" $root }}
{{- $metricsPort := include "hptune.metricsPort" $root | int }}
{{- $gpu := and (eq $role "worker") (gt (int $values.gpu.count) 0) }}
restartPolicy: Never
terminationGracePeriodSeconds: {{ $roleValues.terminationGracePeriodSeconds }}
serviceAccountName: {{ include "hptune.serviceAccountName" $root }}
automountServiceAccountToken: {{ eq $role "chief" }}
enableServiceLinks: false
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.schedulerName }}
schedulerName: {{ . }}
{{- end }}
{{- if and $gpu $values.worker.runtimeClassName }}
runtimeClassName: {{ $values.worker.runtimeClassName }}
{{- end }}
{{- with $values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $values.podSecurityContext | nindent 2 }}
{{- with $roleValues.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $affinity := $roleValues.affinity | default dict }}
{{- $spot := and (eq $role "worker") $values.worker.spot.enabled }}
{{- if and $spot (not (hasKey $affinity "nodeAffinity")) }}
{{- $terms := list }}
{{- range $label := list (list "cloud.google.com/gke-spot" "true") (list "eks.amazonaws.com/capacityType" "SPOT") (list "kubernetes.azure.com/scalesetpriority" "spot") (list "karpenter.sh/capacity-type" "spot") }}
{{- $terms = append $terms (dict "matchExpressions" (list (dict "key" (index $label 0) "operator" "In" "values" (list (index $label 1))))) }}
{{- end }}
{{- if $values.worker.spot.required }}
{{- $affinity = merge (dict "nodeAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (dict "nodeSelectorTerms" $terms))) $affinity }}
{{- else }}
{{- $preferred := list }}
{{- range $term := $terms }}
{{- $preferred = append $preferred (dict "weight" 100 "preference" $term) }}
{{- end }}
{{- $affinity = merge (dict "nodeAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" $preferred)) $affinity }}
{{- end }}
{{- end }}
{{- with $affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $roleValues.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $tolerations := $roleValues.tolerations }}
{{- if $spot }}
{{- $tolerations = append $tolerations (dict "key" "cloud.google.com/gke-spot" "operator" "Equal" "value" "true" "effect" "NoSchedule") }}
{{- $tolerations = append $tolerations (dict "key" "kubernetes.azure.com/scalesetpriority" "operator" "Equal" "value" "spot" "effect" "NoSchedule") }}
{{- end }}
{{- if and $gpu $values.gpu.tolerate }}
{{- $tolerations = append $tolerations (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule") }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- $plain := and (ne $role "chief") $roleValues.command }}
containers:
  - name: hptune
    {{- if and $plain $roleValues.image $roleValues.image.repository }}
    image: {{ printf "%s:%s" $roleValues.image.repository ($roleValues.image.tag | default "latest") | quote }}
    {{- else }}
    image: {{ include "hptune.image" $root | quote }}
    {{- end }}
    imagePullPolicy: {{ $values.image.pullPolicy }}
    {{- if $plain }}
    command: {{ toJson $roleValues.command }}
    {{- else }}
    command: ["hptune"]
    args: ["run", "/etc/hptune/spec.yaml"]
    {{- end }}
    env:
      {{- if eq $role "chief" }}
      - name: KERASTUNER_TUNER_ID
        value: chief
      - name: KERASTUNER_ORACLE_IP
        value: {{ (include "hptune.distribution" $root | fromYaml).bindAddress | quote }}
      {{- else }}
      {{- if $plain }}
      # A plain Keras Tuner script reads its id from KERASTUNER_TUNER_ID: tuner<completion index>.
      - name: HPTUNE_WORKER_INDEX
        valueFrom:
          fieldRef:
            fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
      - name: KERASTUNER_TUNER_ID
        value: tuner$(HPTUNE_WORKER_INDEX)
      {{- else }}
      # The worker's id, tuner<k>, comes from JOB_COMPLETION_INDEX, which Kubernetes sets.
      {{- end }}
      - name: KERASTUNER_ORACLE_IP
        value: {{ include "hptune.chiefHost" $root | quote }}
      {{- end }}
      - name: KERASTUNER_ORACLE_PORT
        value: {{ $oraclePort | quote }}
      - name: HPTUNE_NAMESPACE
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      - name: HPTUNE_POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      - name: HPTUNE_JOB_NAME
        value: {{ include (printf "hptune.%sJob" $role) $root | quote }}
      {{- if not (include "hptune.inJobSet" $root) }}
      # Ended by the chief when the search fails (in a JobSet, its failurePolicy does it).
      - name: HPTUNE_WORKER_JOB_NAME
        value: {{ include "hptune.workerJob" $root | quote }}
      {{- end }}
      - name: HOME
        value: /tmp
      - name: KERAS_HOME
        value: /scratch/keras
      {{- if $gpu }}
      # The GPUs this pod asks for: a worker that sees fewer (no NVIDIA runtime, a CPU-only image)
      # stops before any trial (exit 2) instead of training on the CPU.
      - name: HPTUNE_EXPECT_GPUS
        value: {{ $values.gpu.count | int | quote }}
      {{- end }}
      {{- with $values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- with $values.envFrom }}
    envFrom:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    ports:
      {{- if eq $role "chief" }}
      - name: oracle
        containerPort: {{ $oraclePort }}
        protocol: TCP
      {{- end }}
      {{- if $metricsPort }}
      - name: http-metrics
        containerPort: {{ $metricsPort }}
        protocol: TCP
      {{- if ne $role "chief" }}
      {{- /* A worker with n trial processes (one per GPU, trialsPerGpu on each) serves metrics on port, port+1, ... */}}
      {{- range $slot := untilStep 1 (include "hptune.trialProcesses" $root | int) 1 }}
      - name: http-metrics-{{ $slot }}
        containerPort: {{ add $metricsPort $slot }}
        protocol: TCP
      {{- end }}
      {{- end }}
      {{- end }}
    {{- $resources := deepCopy ($roleValues.resources | default dict) }}
    {{- if $gpu }}
    {{- $limits := $resources.limits | default dict }}
    {{- $_ := set $limits $values.gpu.resource (int $values.gpu.count) }}
    {{- $_ := set $resources "limits" $limits }}
    {{- end }}
    resources:
      {{- toYaml $resources | nindent 6 }}
    securityContext:
      {{- toYaml $values.securityContext | nindent 6 }}
    volumeMounts:
      - name: spec
        mountPath: /etc/hptune
        readOnly: true
      - name: tmp
        mountPath: /tmp
      - name: scratch
        mountPath: /scratch
      {{- if $outputClaim }}
      - name: output
        mountPath: {{ $values.outputVolume.mountPath }}
      {{- end }}
      {{- with $values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: spec
    configMap:
      name: {{ include "hptune.specConfigMap" $root }}
  - name: tmp
    emptyDir:
      sizeLimit: {{ $values.scratch.tmpSizeLimit }}
  - name: scratch
    emptyDir:
      sizeLimit: {{ $values.scratch.sizeLimit }}
  {{- if $outputClaim }}
  - name: output
    persistentVolumeClaim:
      claimName: {{ $outputClaim }}
  {{- end }}
  {{- with $values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
