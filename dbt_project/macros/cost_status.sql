{# settled once the provider priced the object; pending until then; expired when still unpriced
   var('pending_max_age_days') after it happened (the collectors stop asking; it shows as an anomaly). #}
{% macro cost_status(cost_native, occurred_at) -%}
    case
        when {{ cost_native }} is not null then 'settled'
        when {{ occurred_at }} < {{ pending_expires_before() }} then 'expired'
        else 'pending'
    end
{%- endmacro %}

{% macro pending_expires_before() -%}
    ({{ billing_as_of() }} - make_interval(days => {{ var('pending_max_age_days') }}))
{%- endmacro %}
