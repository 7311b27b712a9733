{# Append-only ledger of changes to closed cycles: whenever the events of a closed cycle no longer
   sum to its frozen total plus the adjustments already booked, the difference is booked here, with
   the events that changed after close and the cycle it bills into (the client's cycle open now). A build
   compares only the closed cycles whose events changed since the last one (usage_event_changes). #}
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns',
          full_refresh=false, pre_hook="{{ pin_rollup_watermark(built_from=cycle_day_rollup()) }}", post_hook="{{ advance_rollup_watermark() }}") }}

with closed as (

    select * from {{ ref('fct_cycle_usage') }} as cycles
    where cycle_status = 'closed'
      and cycle_id not in (select cycle_id from ops.retention_purges)  -- their events are gone on purpose
      and {{ cycle_has_changes('cycles') }}

),

closed_cycles as (

    select distinct cycle_id, client_id, cycle_start, cycle_end from closed

),

current_totals as (

    {{ cycle_usage_totals('closed_cycles') }}

),

booked as (

    {% if is_incremental() -%}
    select cycle_id, provider, metric, sum(delta_quantity) as quantity, sum(delta_cost_usd) as cost_usd
    from {{ this }}
    group by cycle_id, provider, metric
    {%- else -%}
    select null::text as cycle_id, null::text as provider, null::text as metric, 0::numeric as quantity,
           0::numeric as cost_usd
    where false
    {%- endif %}

),

compared as (

    select
        coalesce(current_totals.cycle_id, closed.cycle_id) as cycle_id,
        coalesce(current_totals.client_id, closed.client_id) as client_id,
        coalesce(current_totals.provider, closed.provider) as provider,
        coalesce(current_totals.metric, closed.metric) as metric,
        coalesce(current_totals.quantity, 0) - coalesce(closed.quantity, 0) - coalesce(booked.quantity, 0)
            as delta_quantity,
        coalesce(current_totals.cost_usd, 0) - coalesce(closed.cost_usd, 0) - coalesce(booked.cost_usd, 0)
            as delta_cost_usd,
        closed.stored_at
    from current_totals
    full outer join closed
        on closed.cycle_id = current_totals.cycle_id
        and closed.provider = current_totals.provider
        and closed.metric = current_totals.metric
    left join booked
        on booked.cycle_id = coalesce(current_totals.cycle_id, closed.cycle_id)
        and booked.provider = coalesce(current_totals.provider, closed.provider)
        and booked.metric = coalesce(current_totals.metric, closed.metric)
    where (coalesce(current_totals.cycle_id, closed.cycle_id), coalesce(current_totals.provider, closed.provider))
        in (select cycle_id, provider from closed)  -- a provider still settling has no frozen total yet

),

deltas as (

    select compared.*, cycles.cycle_start, cycles.cycle_end
    from compared
    inner join closed_cycles as cycles on cycles.cycle_id = compared.cycle_id
    where compared.delta_quantity <> 0 or compared.delta_cost_usd <> 0

),

changed_events as (

    select
        deltas.cycle_id,
        deltas.provider,
        deltas.metric,
        array_agg(events.usage_event_id order by events.usage_event_id) as usage_event_ids,
        bool_or(events.first_seen_at > coalesce(deltas.stored_at, '-infinity')) as has_late_events
    from deltas
    inner join {{ ref('fct_usage_events') }} as events
        on events.client_id = deltas.client_id
        and events.provider = deltas.provider
        and events.metric = deltas.metric
        and events.occurred_at >= deltas.cycle_start
        and events.occurred_at < deltas.cycle_end
        and events.last_changed_at > coalesce(deltas.stored_at, '-infinity')
    group by deltas.cycle_id, deltas.provider, deltas.metric

),

bills_into as (

    select client_id, cycle_id
    from {{ ref('dim_billing_cycles') }}
    where {{ billing_as_of() }} >= cycle_start and {{ billing_as_of() }} < cycle_end

)

select
    md5(concat_ws(':', deltas.cycle_id, deltas.provider, deltas.metric, {{ billing_as_of() }}::text))
        as adjustment_id,
    deltas.cycle_id,
    deltas.client_id,
    deltas.provider,
    deltas.metric,
    deltas.delta_quantity,
    deltas.delta_cost_usd,
    case
        when changed_events.has_late_events then 'late_event'
        when changed_events.usage_event_ids is not null then 'changed_after_close'
        else 'removed_after_close'
    end as reason,
    coalesce(changed_events.usage_event_ids, array[]::text[]) as usage_event_ids,
    bills_into.cycle_id as bills_into_cycle_id,
    {{ billing_as_of() }} as booked_at

from deltas
left join changed_events
    on changed_events.cycle_id = deltas.cycle_id
    and changed_events.provider = deltas.provider
    and changed_events.metric = deltas.metric
left join bills_into on bills_into.client_id = deltas.client_id
