{# Usage per billing cycle, summed from events (not daily rows) so cycle edges are exact.
   `cycles`: the relation or CTE of cycles to compute; `grain`: extra columns beside cycle, client,
   provider, metric (e.g. ['agent_id']). Used by fct_cycle_usage, fct_cycle_usage_by_agent and
   fct_cycle_adjustments. #}
{% macro cycle_usage_totals(cycles, grain=[]) -%}
    select
        cycles.cycle_id,
        cycles.client_id,
        cycles.cycle_start,
        cycles.cycle_end,
        {% for column in grain %}events.{{ column }},{% endfor %}
        events.provider,
        events.metric,
        events.unit,
        sum(events.quantity) as quantity,
        sum(events.cost_usd) as cost_usd,
        count(*) as event_count,
        count(*) filter (where events.cost_status = 'pending') as pending_events,
        count(*) filter (where events.cost_status = 'expired') as expired_events
    from {{ cycles }} as cycles
    inner join {{ ref('fct_usage_events') }} as events
        on events.client_id = cycles.client_id
        and events.occurred_at >= cycles.cycle_start
        and events.occurred_at < cycles.cycle_end
    group by cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end,
        {% for column in grain %}events.{{ column }},{% endfor %} events.provider, events.metric, events.unit
{%- endmacro %}
