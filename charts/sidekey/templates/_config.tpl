{{/*
The webhook config file, following webhook/config.ts. Empty backend settings are left out so that
the webhook's own defaults apply.
*/}}
{{- define "sidekey.webhookConfig" -}}
{{- $agent := .Values.agent }}
{{- $vault := dict }}
{{- range $k, $v := .Values.backends.vault }}{{ if $v }}{{ $_ := set $vault $k $v }}{{ end }}{{ end }}
{{- $aws := dict }}
{{- range $k, $v := .Values.backends.aws }}{{ if $v }}{{ $_ := set $aws $k $v }}{{ end }}{{ end }}
{{- $backends := dict }}
{{- if $vault }}{{ $_ := set $backends "vault" $vault }}{{ end }}
{{- if $aws }}{{ $_ := set $backends "aws" $aws }}{{ end }}
{{- $cfg := dict
  "apiVersion" "sidekey.io/v1"
  "kind" "WebhookConfig"
  "agent" (dict
    "image" (default (include "sidekey.image" .) $agent.image)
    "imagePullPolicy" $agent.imagePullPolicy
    "mode" $agent.mode
    "refresh" $agent.refresh
    "tmpfsSize" $agent.tmpfsSize
    "mountPath" $agent.mountPath
    "runAsUser" $agent.runAsUser
    "resources" $agent.resources)
  "backends" $backends
}}
{{- toYaml $cfg }}
{{- end }}
