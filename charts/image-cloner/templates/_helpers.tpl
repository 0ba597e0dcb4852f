{{/*
Labels the chart adds to every object, besides those deploy/ sets: nothing else differs from
the kustomize overlays (chart_test.go strips exactly these before comparing). Never in a
selector: selectors stay those of deploy/, so a kustomize install can be taken over by Helm.
*/}}
{{- define "image-cloner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The namespace every binary and manifest of deploy/ defaults to. */}}
{{- define "image-cloner.defaultNamespace" -}}image-cloner-system{{- end }}

{{/* repository:tag, or repository@digest. Argument: an image value. */}}
{{- define "image-cloner.image" -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
{{- end }}

{{/* A comma separated ConfigMap value from a string or a list. */}}
{{- define "image-cloner.csv" -}}
{{- if kindIs "slice" . -}}{{ join "," . }}{{- else -}}{{ toString . }}{{- end -}}
{{- end }}

{{/*
Scheduling and pull secrets of a pod spec. Argument: dict "root" $ "c" .Values.hub|agent.
Each only when set, so default values render the pod spec of deploy/.
*/}}
{{- define "image-cloner.podScheduling" -}}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget. Argument: dict "root" $ "name" NAME "c" .Values.hub|agent. */}}
{{- define "image-cloner.pdb" -}}
{{- if .c.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "image-cloner.labels" .root | nindent 4 }}
spec:
  {{- if ne (toString .c.podDisruptionBudget.maxUnavailable) "" }}
  maxUnavailable: {{ .c.podDisruptionBudget.maxUnavailable }}
  {{- else }}
  minAvailable: {{ .c.podDisruptionBudget.minAvailable }}
  {{- end }}
  selector:
    matchLabels: {app.kubernetes.io/name: {{ .name }}}
{{- end }}
{{- end }}
