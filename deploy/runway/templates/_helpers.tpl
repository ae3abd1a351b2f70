{{/* Labels on every object of the release. */}}
{{- define "runway.labels" -}}
app.kubernetes.io/part-of: runway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "operator"). */}}
{{- define "runway.selector" -}}
app.kubernetes.io/name: runway-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/*
The labels of a component's pods: the component's podLabels, then its selector labels and
app.kubernetes.io/component, which win. Call with (dict "root" $ "component" "operator" "podLabels" ...).
*/}}
{{- define "runway.podLabels" -}}
{{- $labels := include "runway.selector" . | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/component" .component -}}
{{- toYaml (merge $labels (.podLabels | default dict)) -}}
{{- end -}}

{{/*
An image reference: {registry}/{name}:{tag}, with @{digest} when the component's digest is set; call with
(dict "root" $ "image" .Values.operator.image). An empty registry leaves the reference without one.
*/}}
{{- define "runway.image" -}}
{{- $registry := trimSuffix "/" .root.Values.image.registry -}}
{{- $tag := .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- $reference := printf "%s:%s" .image.name $tag -}}
{{- with $registry }}{{ $reference = printf "%s/%s" . $reference }}{{ end -}}
{{- with .image.digest }}{{ $reference = printf "%s@%s" $reference . }}{{ end -}}
{{ $reference }}
{{- end -}}

{{/* The pod security context of every pod: non-root, default seccomp profile. */}}
{{- define "runway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container security context of every container: read-only root, no privilege, no capabilities. */}}
{{- define "runway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Downward-API environment every component needs. */}}
{{- define "runway.podEnv" -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: POD_IP
  valueFrom: {fieldRef: {fieldPath: status.podIP}}
{{- end -}}

{{/*
A component's topologySpreadConstraints: each entry as given, with the component's pod selector as its
labelSelector when it has none. Call with (dict "root" $ "component" "operator" "constraints" ...).
*/}}
{{- define "runway.topologySpreadConstraints" -}}
{{- $constraints := list -}}
{{- range .constraints -}}
{{- $constraint := deepCopy . -}}
{{- if not (hasKey $constraint "labelSelector") -}}
{{- $selector := include "runway.selector" (dict "root" $.root "component" $.component) | fromYaml -}}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" $selector) -}}
{{- end -}}
{{- $constraints = append $constraints $constraint -}}
{{- end -}}
{{- toYaml $constraints -}}
{{- end -}}

{{/* The ports the activator listens on: its container ports, its listen flags and the operator's view of them. */}}
{{- define "runway.activator.port.http" -}}8080{{- end -}}
{{- define "runway.activator.port.internal" -}}8081{{- end -}}
{{- define "runway.activator.port.admin" -}}9090{{- end -}}
{{- define "runway.operator.port.admin" -}}8080{{- end -}}

{{/*
The milliseconds of a duration value: numbers with the units ms, s, m and h, alone or one after another as in Go
and humantime ("250ms", "5s", "1m30s", "1.5h"), or a bare number of seconds. Anything else fails the render (the
schema refuses it first). Rounded to the millisecond.
*/}}
{{- define "runway.durationMs" -}}
{{- $text := toString . | trim -}}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?$" $text -}}
{{- round (mulf (float64 $text) 1000) 0 | int64 -}}
{{- else if regexMatch "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$" $text -}}
{{- $factors := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ms|s|m|h)" $text -1 -}}
{{- $unit := regexFind "(ms|s|m|h)$" . -}}
{{- $total = addf $total (mulf (float64 (trimSuffix $unit .)) (get $factors $unit)) -}}
{{- end -}}
{{- round $total 0 | int64 -}}
{{- else -}}
{{- fail (printf "%q is not a duration such as 250ms, 5s, 1m30s or 1h (a bare number is seconds)" $text) -}}
{{- end -}}
{{- end -}}

{{/*
A duration value as the binaries' flags take it (a number with ms, s or m): whole minutes as m, whole seconds as
s, else ms. So values may use h and compound forms (1m30s) that the flags do not parse.
*/}}
{{- define "runway.duration" -}}
{{- $ms := include "runway.durationMs" . | int64 -}}
{{- if and (gt $ms 0) (eq (mod $ms 60000) 0) -}}
{{ div $ms 60000 }}m
{{- else if eq (mod $ms 1000) 0 -}}
{{ div $ms 1000 }}s
{{- else -}}
{{ $ms }}ms
{{- end -}}
{{- end -}}

{{/*
The activator pods' terminationGracePeriodSeconds: drainDelay (serving while leaving the endpoints) plus
shutdownTimeout (the longest wait for requests in flight), rounded up to whole seconds, plus 10 s for the process
to close its connections and exit before the kubelet's SIGKILL.
*/}}
{{- define "runway.activator.terminationGracePeriodSeconds" -}}
{{- $ms := add (include "runway.durationMs" .Values.activator.drainDelay | int64) (include "runway.durationMs" .Values.activator.shutdownTimeout | int64) -}}
{{- add (div (add $ms 999) 1000) 10 -}}
{{- end -}}

{{/* The name of the helm test's Runway Service (at most 52 characters, the limit of a Service name). */}}
{{- define "runway.testService" -}}
{{- printf "%s-test" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/*
Whether a Prometheus Operator object is rendered: its enabled value true, or "auto" and the cluster serves its kind
(monitoring.coreos.com/v1/{kind}). Prints true or false. Call with (dict "root" $ "enabled" ... "kind" "PodMonitor").
*/}}
{{- define "runway.monitoring.enabled" -}}
{{- if eq (toString .enabled) "auto" -}}
{{- .root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) -}}
{{- else -}}
{{- .enabled -}}
{{- end -}}
{{- end -}}
