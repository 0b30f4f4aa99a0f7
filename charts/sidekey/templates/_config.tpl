{{/*
The webhook config file; its schema is webhook/config.ts (strict: unknown fields are refused). Empty
backend settings are left out so that the webhook's own defaults apply.
*/}}
{{- define "sidekey.webhookConfig" -}}
{{- $agent := .Values.agent }}
{{- $backends := dict }}
{{- range $backend, $settings := .Values.backends }}
{{- $set := dict }}
{{- range $k, $v := $settings }}{{ if $v }}{{ $_ := set $set $k $v }}{{ end }}{{ end }}
{{- if $set }}{{ $_ := set $backends $backend $set }}{{ end }}
{{- end }}
{{- $pullSecrets := list }}
{{- range $agent.imagePullSecrets }}{{ $pullSecrets = append $pullSecrets .name }}{{ end }}
{{- $cfg := dict
  "apiVersion" "sidekey.io/v1"
  "kind" "WebhookConfig"
  "agent" (dict
    "image" (default (include "sidekey.image" .) $agent.image)
    "imagePullPolicy" $agent.imagePullPolicy
    "imagePullSecrets" $pullSecrets
    "mode" $agent.mode
    "refresh" $agent.refresh
    "onChange" $agent.onChange
    "tmpfsSize" $agent.tmpfsSize
    "mountPath" $agent.mountPath
    "runAsUser" $agent.runAsUser
    "runAsGroup" $agent.runAsGroup
    "resources" $agent.resources
    "metrics" $agent.metrics)
  "nativeSidecars" $agent.nativeSidecars
  "openshift" (default false .Values.openshift)
  "onInvalidAnnotations" .Values.onInvalidAnnotations
  "maxConcurrentReviews" (int (default 2 .Values.maxConcurrentReviews))
  "excludedNamespaces" (include "sidekey.excludedNamespaces" . | fromYamlArray)
  "backends" $backends
  "logLevel" .Values.logLevel
}}
{{- with .Values.kubernetesVersion }}{{ $_ := set $cfg "kubernetesVersion" . }}{{ end }}
{{- toYaml $cfg }}
{{- end }}
