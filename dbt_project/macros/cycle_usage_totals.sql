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
        {{ usage_measures('events') }}
    from {{ cycles }} as cycles
    inner join {{ ref('fct_usage_events') }} as events
        on events.client_id = cycles.client_id
        and events.occurred_at >= cycles.cycle_start
        and events.occurred_at < cycles.cycle_end
    {#- the span of all the cycles, computed once, lets the occurred_at index read only their events #}
    where events.occurred_at >= (select min(cycle_start) from {{ cycles }})
      and events.occurred_at < (select max(cycle_end) from {{ cycles }})
    group by cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end,
        {% for column in grain %}events.{{ column }},{% endfor %} events.provider, events.metric, events.unit
{%- endmacro %}


{# The body of fct_cycle_usage and fct_cycle_usage_by_agent: totals per cycle x `grain` x provider x metric
   with their status, for the cycles not closed yet or with changed events; rows of a cycle and provider
   already stored as closed are never selected again. #}
{% macro cycle_usage(grain=[]) -%}
    with cycles as (

        select * from {{ ref('dim_billing_cycles') }} as cycles
        where cycle_start < {{ billing_as_of() }}
        {%- if is_incremental() %}
          and (cycle_id in (select cycle_id from {{ this }} where cycle_status <> 'closed')
               or {{ cycle_has_changes('cycles') }})
        {%- endif %}

    ),

    totals as (

        {{ cycle_usage_totals('cycles', grain) }}

    ),

    coverage_errors as (

        {{ cycle_coverage_errors('cycles') }}

    ),

    computed as (

        select
            md5(concat_ws(':', totals.cycle_id, {% for column in grain %}coalesce(totals.{{ column }}, ''), {% endfor %}totals.provider, totals.metric))
                as cycle_usage_id,
            totals.*,
            {{ cycle_status('totals.cycle_end', 'totals.provider',
                            'sum(totals.pending_events) over (partition by totals.cycle_id, totals.provider)',
                            'coalesce(coverage_errors.error_days, 0)') }} as cycle_status,
            {{ cycle_status_reason('totals.cycle_end', 'totals.provider',
                                   'sum(totals.pending_events) over (partition by totals.cycle_id, totals.provider)',
                                   'coalesce(coverage_errors.error_days, 0)', 'coverage_errors.first_error_day') }}
                as status_reason
        from totals
        left join coverage_errors
            on coverage_errors.cycle_id = totals.cycle_id and coverage_errors.provider = totals.provider

    )

    select
        computed.*,
        case when cycle_status = 'closed' then {{ billing_as_of() }} end as closed_at,
        {{ billing_as_of() }} as computed_at,
        now() as stored_at  -- wall clock: events changed after this are adjustments

    from computed
    {% if is_incremental() -%}
    where not exists (
        select 1 from {{ this }} as stored
        where stored.cycle_id = computed.cycle_id and stored.provider = computed.provider
          and stored.cycle_status = 'closed'
    )
    {%- endif %}
{%- endmacro %}
