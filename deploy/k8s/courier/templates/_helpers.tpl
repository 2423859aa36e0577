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
- name: COURIER_CONSOLE_BASE_URL
  value: {{ .Values.config.consoleBaseUrl | quote }}
- name: COURIER_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: COURIER_HEALTH_HOST
  value: "0.0.0.0"
- name: COURIER_HEALTH_PORT
  value: {{ .Values.healthPort | quote }}
{{- end }}
