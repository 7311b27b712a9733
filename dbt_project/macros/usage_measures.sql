{# The measures every usage rollup carries. cost_usd sums settled costs only: pending_events and
   expired_events say how many events are still unpriced, so a null is never read as zero. #}
{% macro usage_measures(events='') -%}
    {%- set column = (events ~ '.') if events else '' -%}
    sum({{ column }}quantity) as quantity,
    sum({{ column }}cost_usd) as cost_usd,
    count(*) as event_count,
    count(*) filter (where {{ column }}cost_status = 'pending') as pending_events,
    count(*) filter (where {{ column }}cost_status = 'expired') as expired_events
{%- endmacro %}
