{# Usage per billing cycle. A cycle starts at the client's local midnight, so its first and last UTC days are
   usually partial: its whole UTC days are summed from a day rollup's rows, its partial days from events (the
   (client_id, occurred_at) index reads only the client's), exact to the cent either way (numeric sums).
   A recomputed cycle so reads its whole days' rollup rows and its client's events of at most two partial days,
   not every event of its month.
   `cycles`: the relation or CTE of cycles to compute; `grain`: extra columns beside cycle, client,
   provider, metric (e.g. ['agent_id']); a day rollup carrying them is read (cycle_day_rollup). Used by
   fct_cycle_usage, fct_cycle_usage_by_agent and fct_cycle_adjustments. #}
{% macro cycle_usage_totals(cycles, grain=[]) -%}
    with cycle_days as (

        select
            cycle_id,
            client_id,
            cycle_start,
            cycle_end,
            case when (cycle_start at time zone 'UTC') = (cycle_start at time zone 'UTC')::date
                 then (cycle_start at time zone 'UTC')::date
                 else (cycle_start at time zone 'UTC')::date + 1 end as first_whole_day,
            (cycle_end at time zone 'UTC')::date as whole_days_end
        from {{ cycles }}

    ),

    {#- the partial days: before the first whole day, and from the end of the whole days (or of the
        first whole day when none is whole) to the cycle's end #}
    edges as (

        select cycle_id, client_id, cycle_start as edge_start,
               least(first_whole_day::timestamp at time zone 'UTC', cycle_end) as edge_end
        from cycle_days
        union all
        select cycle_id, client_id, greatest(whole_days_end, first_whole_day)::timestamp at time zone 'UTC',
               cycle_end
        from cycle_days

    ),

    parts as (

        select
            cycle_days.cycle_id,
            {% for column in grain %}days.{{ column }},{% endfor %}
            days.provider,
            days.metric,
            days.unit,
            days.quantity,
            days.cost_usd,
            days.event_count,
            days.pending_events,
            days.expired_events
        from cycle_days
        inner join {{ ref(cycle_day_rollup(grain)) }} as days
            on days.client_id = cycle_days.client_id
            and days.usage_date >= cycle_days.first_whole_day
            and days.usage_date < cycle_days.whole_days_end

        union all

        select
            edges.cycle_id,
            {% for column in grain %}edge_totals.{{ column }},{% endfor %}
            edge_totals.provider,
            edge_totals.metric,
            edge_totals.unit,
            edge_totals.quantity,
            edge_totals.cost_usd,
            edge_totals.event_count,
            edge_totals.pending_events,
            edge_totals.expired_events
        from edges
        {#- lateral, so each partial day is read through the index: joined, the planner hashed the whole table #}
        cross join lateral (
            select
                {% for column in grain %}events.{{ column }},{% endfor %}
                events.provider,
                events.metric,
                events.unit,
                {{ usage_measures('events') }}
            from {{ ref('fct_usage_events') }} as events
            where events.client_id = edges.client_id
              and events.occurred_at >= edges.edge_start
              and events.occurred_at < edges.edge_end
            group by {% for column in grain %}events.{{ column }}, {% endfor %}events.provider, events.metric,
                events.unit
        ) as edge_totals
        where edges.edge_start < edges.edge_end

    )

    select
        cycle_days.cycle_id,
        cycle_days.client_id,
        cycle_days.cycle_start,
        cycle_days.cycle_end,
        {% for column in grain %}parts.{{ column }},{% endfor %}
        parts.provider,
        parts.metric,
        parts.unit,
        sum(parts.quantity) as quantity,
        sum(parts.cost_usd) as cost_usd,
        sum(parts.event_count)::bigint as event_count,
        sum(parts.pending_events)::bigint as pending_events,
        sum(parts.expired_events)::bigint as expired_events
    from parts
    inner join cycle_days on cycle_days.cycle_id = parts.cycle_id
    group by cycle_days.cycle_id, cycle_days.client_id, cycle_days.cycle_start, cycle_days.cycle_end,
        {% for column in grain %}parts.{{ column }},{% endfor %} parts.provider, parts.metric, parts.unit
{%- endmacro %}


{# The day rollup whose rows a cycle of `grain` sums: per client without an agent, per agent with one. A model
   summing it pins its changes to that rollup's (pin_rollup_watermark(built_from=...)), so it never sums a day
   the rollup has not rebuilt yet. #}
{% macro cycle_day_rollup(grain=[]) -%}
    {{ 'fct_daily_usage' if grain else 'fct_daily_client_usage' }}
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
