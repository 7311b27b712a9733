{# What makes an event different for billing: a change here moves fct_usage_events.last_changed_at. #}
{% macro usage_event_content(alias) -%}
    md5(row({{ alias }}.quantity, {{ alias }}.cost_usd, {{ alias }}.cost_native, {{ alias }}.currency,
            {{ alias }}.occurred_at, {{ alias }}.client_id, {{ alias }}.agent_id, {{ alias }}.attribution_status,
            {{ alias }}.linked_external_id, {{ alias }}.source_channels)::text)
{%- endmacro %}
