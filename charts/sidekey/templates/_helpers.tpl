{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "sidekey.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name used as the prefix of every object. */}}
{{- define "sidekey.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sidekey.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidekey.labels" -}}
helm.sh/chart: {{ include "sidekey.chart" . }}
{{ include "sidekey.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sidekey
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sidekey.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidekey.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* Label carried by the webhook's own pods; the objectSelector excludes every pod that has it. */}}
{{- define "sidekey.selfLabelKey" -}}
sidekey.io/webhook
{{- end }}

{{- define "sidekey.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidekey.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sidekey.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "sidekey.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "sidekey.leaseName" -}}
{{- printf "%s-tls-writer" (include "sidekey.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Cluster-scoped names must be unique per release and namespace. */}}
{{- define "sidekey.webhookConfigName" -}}
{{- printf "%s-%s" (include "sidekey.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespaces never mutated, as a YAML list: kube-system, the release namespace, then
webhook.namespaceSelector.excludeNamespaces, then kube-public. The control-plane ones are fixed, so a
custom list (e.g. [monitoring]) cannot drop them. Both the namespaceSelector and the webhook's own
config file use this one list.
*/}}
{{- define "sidekey.excludedNamespaces" -}}
{{- $excluded := list "kube-system" .Release.Namespace }}
{{- range .Values.webhook.namespaceSelector.excludeNamespaces }}{{ $excluded = append $excluded . }}{{ end }}
{{- append $excluded "kube-public" | uniq | toYaml }}
{{- end }}

{{- define "sidekey.configMapName" -}}
{{- printf "%s-config" (include "sidekey.fullname" .) }}
{{- end }}

{{- define "sidekey.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Whether the chart runs the webhook in the cluster (false in url mode). */}}
{{- define "sidekey.inCluster" -}}
{{- if not .Values.webhook.url }}true{{- end }}
{{- end }}

{{/* cert-manager objects' names. */}}
{{- define "sidekey.certManager.issuerRef" -}}
{{- if .Values.tls.certManager.issuerRef }}
{{- toYaml .Values.tls.certManager.issuerRef }}
{{- else }}
name: {{ include "sidekey.fullname" . }}-ca
kind: Issuer
group: cert-manager.io
{{- end }}
{{- end }}

{{/*
Whether a prometheus-operator object is rendered: enabled true, or auto and the cluster serves its
kind (.Capabilities; `helm template --api-versions monitoring.coreos.com/v1/<Kind>` offline).
Usage: include "sidekey.monitoringEnabled" (list . .Values.metrics.serviceMonitor.enabled "ServiceMonitor")
*/}}
{{- define "sidekey.monitoringEnabled" -}}
{{- $root := index . 0 }}{{ $enabled := index . 1 }}{{ $kind := index . 2 }}
{{- if eq (toString $enabled) "true" }}true
{{- else if and (eq (toString $enabled) "auto") ($root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" $kind)) }}true
{{- end }}
{{- end }}
