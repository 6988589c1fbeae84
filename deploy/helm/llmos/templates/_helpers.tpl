{{/* Names and labels. */}}
{{- define "llmos.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llmos.fullname" -}}
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

{{- define "llmos.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llmos.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llmos.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "llmos.labels" -}}
helm.sh/chart: {{ include "llmos.chart" . }}
{{ include "llmos.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llmos
{{- end }}

{{- define "llmos.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "llmos.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The admin key: its Secret and the key in it. */}}
{{- define "llmos.adminSecretName" -}}
{{- default (printf "%s-admin" (include "llmos.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "llmos.adminSecretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretKey }}{{ else }}admin-key{{ end }}
{{- end }}

{{/* Memory, derived from the model's estimate (values.yaml: memory). */}}
{{- define "llmos.budgetMiB" -}}
{{- mul (int .Values.model.memoryEstimateMiB) (int .Values.model.residentModels) }}
{{- end }}

{{- define "llmos.requestMiB" -}}
{{- add (include "llmos.budgetMiB" . | int) (int .Values.memory.serverMiB) }}
{{- end }}

{{- define "llmos.limitMiB" -}}
{{- div (mul (include "llmos.requestMiB" . | int) (add 100 (int .Values.memory.limitHeadroomPercent))) 100 }}
{{- end }}

{{/* The database: PostgreSQL in the release, an external one, or SQLite on the volume. */}}
{{- define "llmos.postgresqlName" -}}
{{- printf "%s-postgresql" (include "llmos.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "llmos.postgresqlSecretName" -}}
{{- default (include "llmos.postgresqlName" .) .Values.postgresql.existingSecret }}
{{- end }}

{{- define "llmos.postgresqlSecretKey" -}}
{{- if .Values.postgresql.existingSecret }}{{ .Values.postgresql.existingSecretKey }}{{ else }}password{{ end }}
{{- end }}

{{- define "llmos.sharedDatabase" -}}
{{- if or .Values.postgresql.enabled .Values.database.url }}true{{ end }}
{{- end }}

{{- define "llmos.validate" -}}
{{- if and (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) (not (include "llmos.sharedDatabase" .)) }}
{{- fail "more than one llmos replica (replicaCount > 1 or autoscaling.enabled) needs a shared database: set postgresql.enabled=true or database.url" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas is larger than autoscaling.maxReplicas" }}
{{- end }}
{{- if lt (int .Values.model.memoryEstimateMiB) 1 }}
{{- fail "model.memoryEstimateMiB must be a positive number of MiB (docs/deploy.md shows how to get it)" }}
{{- end }}
{{- if lt (int .Values.model.residentModels) 1 }}
{{- fail "model.residentModels must be at least 1" }}
{{- end }}
{{- if and .Values.database.url (contains "@" .Values.database.url) (regexMatch "://[^/@]*:[^/@]*@" .Values.database.url) }}
{{- fail "database.url holds a password: put it in a Secret and name it in database.existingSecret" }}
{{- end }}
{{- end }}
