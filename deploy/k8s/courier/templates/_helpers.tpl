{{- define "courier.labels" -}}
app.kubernetes.io/name: courier
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "courier.env" -}}
- name: COURIER_NATS_URL
  value: {{ .Values.config.natsUrl | quote }}
- name: COURIER_STORAGE_URL
  value: {{ .Values.config.storageUrl | quote }}
{{- with .Values.config.backupUrl }}
- name: COURIER_BACKUP_URL
  value: {{ . | quote }}
{{- end }}
- name: COURIER_DEFAULT_REGION
  value: {{ .Values.config.defaultRegion | default "local" | quote }}
{{- with .Values.config.regions }}
- name: COURIER_REGIONS
  value: {{ include "courier.regions" $ | quote }}
{{- end }}
- name: COURIER_CONSOLE_BASE_URL
  value: {{ .Values.config.consoleBaseUrl | quote }}
- name: COURIER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: COURIER_HEALTH_HOST
  value: "0.0.0.0"
- name: COURIER_HEALTH_PORT
  value: {{ .Values.healthPort | quote }}
{{- end }}

{{- /*
COURIER_REGIONS as JSON from .Values.config.regions (camelCase values -> the settings'
snake_case keys; an absent or empty backupUrl/sse/kmsKeyId is left out, i.e. None).
Refuses what would break every service at start or put a secret in plain sight in the
Deployment: a missing storageUrl, an unknown sse, a defaultRegion not among the regions,
credentials written into a URL.
*/ -}}
{{- define "courier.regions" -}}
{{- $regions := dict -}}
{{- range $name, $r := .Values.config.regions -}}
{{- $url := required (printf "config.regions.%s.storageUrl is required" $name) $r.storageUrl -}}
{{- $stores := dict "storage_url" $url -}}
{{- with $r.backupUrl }}{{ $_ := set $stores "backup_url" . }}{{ end -}}
{{- with $r.sse -}}
{{- if not (has . (list "AES256" "aws:kms")) -}}
{{- fail (printf "config.regions.%s.sse must be AES256 or aws:kms, not %q" $name .) -}}
{{- end -}}
{{- $_ := set $stores "sse" . -}}
{{- end -}}
{{- with $r.kmsKeyId }}{{ $_ := set $stores "kms_key_id" . }}{{ end -}}
{{- range $role, $u := pick $stores "storage_url" "backup_url" -}}
{{- if regexMatch "^[a-zA-Z0-9+.-]+://[^/?#]*@" $u -}}
{{- fail (printf "config.regions.%s: credentials in the %s; put them in existingSecret" $name $role) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $regions $name $stores -}}
{{- end -}}
{{- if not (hasKey $regions (.Values.config.defaultRegion | default "local")) -}}
{{- fail (printf "config.defaultRegion %q is not one of config.regions" (.Values.config.defaultRegion | default "local")) -}}
{{- end -}}
{{- toJson $regions -}}
{{- end -}}
