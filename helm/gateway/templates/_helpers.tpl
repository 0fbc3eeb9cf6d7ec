{{/*
Names and labels.
*/}}
{{- define "gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.fullname" -}}
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

{{- define "gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Component resources: <fullname>-redis, <fullname>-vllm. */}}
{{- define "gateway.redis.fullname" -}}
{{- printf "%s-redis" (include "gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.vllm.fullname" -}}
{{- printf "%s-vllm" (include "gateway.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gateway.policies.name" -}}
{{- default (printf "%s-policies" (include "gateway.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{/*
Selector labels of one component. Every workload (gateway, redis, vllm) carries its own component label,
so a Service never selects another component's pods. Call with (dict "ctx" $ "component" "gateway").
*/}}
{{- define "gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gateway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Common labels of one component; same argument as gateway.selectorLabels. */}}
{{- define "gateway.labels" -}}
helm.sh/chart: {{ include "gateway.chart" .ctx }}
{{ include "gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: {{ include "gateway.name" .ctx }}
{{- end }}

{{- define "gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Secrets.
*/}}
{{/* The chart's own Secret holds the non-empty entries of secrets.env. */}}
{{- define "gateway.secretData" -}}
{{- range $name, $value := .Values.secrets.env }}
{{- if $value }}
{{ $name }}: {{ $value | toString | b64enc | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gateway.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (include "gateway.secretData" . | trim) }}true{{ end }}
{{- end }}

{{/* Name of the Secret exposed to the gateway as environment, or empty when there is none. */}}
{{- define "gateway.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if include "gateway.createSecret" . }}
{{- include "gateway.fullname" . }}
{{- end }}
{{- end }}

{{/*
Redis: bundled (redis.enabled), external by URL (redis.url / redis.urlSecret), or none (in-process state).
*/}}
{{- define "gateway.redis.validate" -}}
{{- $external := or .Values.redis.url .Values.redis.urlSecret.name }}
{{- if and .Values.redis.enabled $external }}
{{- fail "redis: set either redis.enabled=true (bundled Redis) or redis.url / redis.urlSecret.name (external Redis), not both" }}
{{- end }}
{{- if and .Values.redis.url .Values.redis.urlSecret.name }}
{{- fail "redis: set redis.url or redis.urlSecret.name, not both" }}
{{- end }}
{{- end }}

{{- define "gateway.redis.bundledUrl" -}}
{{- printf "redis://%s:6379/0" (include "gateway.redis.fullname" .) }}
{{- end }}

{{/* The GATEWAY_REDIS_URL env entry, if any. */}}
{{- define "gateway.redis.env" -}}
{{- if .Values.redis.enabled }}
- name: GATEWAY_REDIS_URL
  value: {{ include "gateway.redis.bundledUrl" . | quote }}
{{- else if .Values.redis.url }}
- name: GATEWAY_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- else if .Values.redis.urlSecret.name }}
- name: GATEWAY_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.urlSecret.name }}
      key: {{ .Values.redis.urlSecret.key }}
{{- end }}
{{- end }}

{{- define "gateway.redis.configured" -}}
{{- if or .Values.redis.enabled .Values.redis.url .Values.redis.urlSecret.name }}true{{ end }}
{{- end }}

{{/*
Policy.
*/}}
{{/*
The generated policy document (policy.spec), with the vLLM deployment added when vllm.enabled: it becomes
the first candidate of each model in vllm.policy.models. Works on a copy, so .Values stay as given.
*/}}
{{- define "gateway.generatedPolicy" -}}
{{- $policy := deepCopy .Values.policy.spec }}
{{- if .Values.vllm.enabled }}
{{- $vllm := .Values.vllm }}
{{- $name := $vllm.policy.deploymentName }}
{{- $deployment := dict
      "type" "vllm"
      "model" $vllm.servedModelName
      "api_base" (printf "http://%s:%d/v1" (include "gateway.vllm.fullname" .) (int $vllm.service.port))
      "hosting" "self" }}
{{- if $vllm.apiKeySecret.name }}
{{- $_ := set $deployment "api_key" "${VLLM_API_KEY}" }}
{{- end }}
{{- $deployment = mergeOverwrite $deployment (deepCopy $vllm.policy.attributes) }}
{{- $deployments := get $policy "deployments" | default dict }}
{{- $_ := set $deployments $name $deployment }}
{{- $_ := set $policy "deployments" $deployments }}
{{- $models := get $policy "models" | default dict }}
{{- range $vllm.policy.models }}
{{- $route := get $models . | default dict }}
{{- $candidates := without ($route.deployments | default list) $name }}
{{- $_ := set $route "deployments" (prepend $candidates $name) }}
{{- $_ := set $models . $route }}
{{- end }}
{{- $_ := set $policy "models" $models }}
{{- end }}
{{- toYaml $policy }}
{{- end }}

{{/* File name -> content of every policy file the chart puts in its ConfigMap. Rendered as YAML. */}}
{{- define "gateway.policyFiles" -}}
{{- $files := dict }}
{{- if .Values.policy.fromChartFiles }}
{{- range $path, $_ := .Files.Glob "files/policies/*.yaml" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.policy.files }}
{{- $_ := set $files $name $text }}
{{- end }}
{{- if .Values.policy.spec }}
{{- $_ := set $files "gateway.yaml" (include "gateway.generatedPolicy" .) }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{- define "gateway.policy.validate" -}}
{{- if not .Values.policy.existingConfigMap }}
{{- $files := include "gateway.policyFiles" . | fromYaml }}
{{- if not (hasKey $files .Values.policy.active) }}
{{- fail (printf "policy.active=%q is not among the policy files the chart renders (%s): set policy.spec, policy.files, policy.fromChartFiles or policy.existingConfigMap" .Values.policy.active (keys $files | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
True when nothing but the generated policy is in play and it only reaches the built-in simulator: then there
is no upstream to protect and the gateway may serve without API keys (gateway.allowUnauthenticated=auto).
*/}}
{{- define "gateway.simulatorOnly" -}}
{{- $only := and .Values.policy.spec (not .Values.policy.files) (not .Values.policy.fromChartFiles) (not .Values.policy.existingConfigMap) (not .Values.vllm.enabled) (not (include "gateway.secretName" .)) }}
{{- if $only }}
{{- range $_, $deployment := .Values.policy.spec.deployments }}
{{- if ne (toString $deployment.type) "simulator" }}{{ $only = false }}{{ end }}
{{- end }}
{{- end }}
{{- if $only }}true{{ end }}
{{- end }}

{{- define "gateway.allowUnauthenticated" -}}
{{- $setting := .Values.gateway.allowUnauthenticated }}
{{- if eq (toString $setting) "auto" }}
{{- ternary "true" "false" (eq (include "gateway.simulatorOnly" .) "true") }}
{{- else }}
{{- ternary "true" "false" (eq (toString $setting) "true") }}
{{- end }}
{{- end }}

{{/*
With allowUnauthenticated resolved to false and only the generated policy in play, the policy must hold API
keys or the gateway would refuse to start: say so at install time instead of in a crash loop.
*/}}
{{- define "gateway.auth.validate" -}}
{{- $generatedOnly := and .Values.policy.spec (not .Values.policy.files) (not .Values.policy.fromChartFiles) (not .Values.policy.existingConfigMap) }}
{{- if and $generatedOnly (eq (include "gateway.allowUnauthenticated" .) "false") (not .Values.policy.spec.keys) }}
{{- fail "policy.spec defines no API keys, so the gateway would refuse to serve on the pod network. Add policy.spec.keys (sha256 of each key: `gateway keys hash`), or set gateway.allowUnauthenticated=true if something in front of the gateway authenticates callers." }}
{{- end }}
{{- end }}
