{# The one way anomaly models read their thresholds (docs/checks-and-anomalies.md).

   var('anomaly_thresholds') in dbt_project.yml holds every default. var('anomaly_threshold_overrides')
   changes some of them for one client or one provider: a key naming a provider (retell, twilio,
   openrouter) applies to that provider's series, any other key is a client_id; a client's value wins
   over its provider's, which wins over the default. A map-valued threshold (per metric) is merged key
   by key. Window lengths are global (anomaly_setting) and cannot be overridden. #}

{% macro anomaly_global_settings() -%}
    {{ return(['baseline_days', 'evaluation_days', 'min_same_weekday_points', 'min_baseline_points']) }}
{%- endmacro %}

{% macro anomaly_providers() -%}
    {{ return(['retell', 'twilio', 'openrouter']) }}
{%- endmacro %}

{# A global setting, as a Python value. #}
{% macro anomaly_setting(name) -%}
    {%- set defaults = var('anomaly_thresholds') -%}
    {%- if name not in anomaly_global_settings() -%}
        {{ exceptions.raise_compiler_error("anomaly_setting('" ~ name ~ "'): not a global setting; use anomaly_threshold()") }}
    {%- endif -%}
    {{ return(defaults[name]) }}
{%- endmacro %}

{# The overrides, checked: unknown names and overridden global settings fail the build. #}
{% macro anomaly_overrides() -%}
    {%- set defaults = var('anomaly_thresholds') -%}
    {%- set overrides = var('anomaly_threshold_overrides', {}) or {} -%}
    {%- for key, entry in overrides.items() -%}
        {%- for name in entry -%}
            {%- if name not in defaults or name in anomaly_global_settings() -%}
                {{ exceptions.raise_compiler_error("anomaly_threshold_overrides." ~ key ~ "." ~ name
                    ~ ": not an overridable threshold (see anomaly_thresholds in dbt_project.yml)") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(overrides) }}
{%- endmacro %}

{# A value as SQL: a number, or for a per-metric map a case on `metric` (a metric it does not list gets null,
   which no comparison passes). #}
{% macro _anomaly_value(value, metric) -%}
    {%- if value is mapping -%}
        {%- if metric is none -%}
            {{ exceptions.raise_compiler_error("a per-metric anomaly threshold needs a metric expression") }}
        {%- endif -%}
        (case {{ metric }}{% for name, amount in value.items() | sort %} when '{{ name }}' then {{ amount }}::numeric{% endfor %} end)
    {%- else -%}
        {{ value }}::numeric
    {%- endif -%}
{%- endmacro %}

{# The threshold `name` for each row, as a SQL expression over the row's client, provider and metric
   columns (pass none for a dimension the rows do not have). #}
{% macro anomaly_threshold(name, client_id='client_id', provider='provider', metric='metric') -%}
    {%- set defaults = var('anomaly_thresholds') -%}
    {%- if name not in defaults -%}
        {{ exceptions.raise_compiler_error("unknown anomaly threshold '" ~ name ~ "'") }}
    {%- endif -%}
    {%- if name in anomaly_global_settings() -%}
        {{ exceptions.raise_compiler_error("'" ~ name ~ "' is a global setting: use anomaly_setting()") }}
    {%- endif -%}
    {%- set default = defaults[name] -%}
    {%- set clients = [] -%}
    {%- set providers = [] -%}
    {%- for key, entry in anomaly_overrides().items() | sort if name in entry -%}
        {%- set value = entry[name] -%}
        {%- if default is mapping -%}
            {%- set merged = {} -%}
            {%- do merged.update(default) -%}
            {%- do merged.update(value) -%}
            {%- set value = merged -%}
        {%- endif -%}
        {%- if key in anomaly_providers() -%}
            {%- if provider is not none -%}{%- do providers.append((provider, key, value)) -%}{%- endif -%}
        {%- elif client_id is not none -%}
            {%- do clients.append((client_id, key, value)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set whens = clients + providers -%}
    {%- if whens -%}
        (case{% for column, key, value in whens %} when {{ column }} = '{{ key }}' then {{ _anomaly_value(value, metric) }}{% endfor %} else {{ _anomaly_value(default, metric) }} end)
    {%- else -%}
        {{ _anomaly_value(default, metric) }}
    {%- endif -%}
{%- endmacro %}
