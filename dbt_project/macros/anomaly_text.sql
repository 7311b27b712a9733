{# Pieces of the one-line explanations of fct_usage_anomalies. #}

{% macro anomaly_subject(level, client_id, provider, metric, account) -%}
    (case {{ level }}
        when 'client_metric' then {{ client_id }} || ' ' || {{ provider }} || ' ' || {{ metric }}
        when 'provider_metric' then {{ provider }} || ' ' || {{ metric }} || ' (all clients)'
        when 'provider' then {{ provider }} || ' (all clients)'
        when 'client' then {{ client_id }} || ' (all providers)'
        when 'client_provider' then {{ client_id }} || ' at ' || {{ provider }}
        when 'account' then {{ provider }} || ' account ' || {{ account }}
        else {{ provider }}
    end)
{%- endmacro %}

{% macro anomaly_number(value) -%}
    (case
        when {{ value }} is null then 'n/a'
        when abs({{ value }}) >= 100 then round({{ value }})::text
        when abs({{ value }}) >= 1 then round({{ value }}, 2)::text
        else round({{ value }}, 4)::text
    end)
{%- endmacro %}

{% macro anomaly_percent(value) -%}
    (case when {{ value }} is null then 'n/a' else round(100 * {{ value }}, 1)::text || ' %' end)
{%- endmacro %}

{% macro anomaly_baseline_text(points, same_weekday) -%}
    ({{ points }}::text || case when {{ same_weekday }} then ' same-weekday days' else ' trailing days' end)
{%- endmacro %}
