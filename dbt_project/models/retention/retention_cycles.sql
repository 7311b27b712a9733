{# Billing cycles that ended more than var('retention_months') before the build's as_of and were not
   purged yet, each with what retention may do: purge it only when it is closed and its stored
   aggregates plus adjustments equal its events; otherwise the reasons it is refused. Python
   (billing_usage/retention.py) deletes only what this model and retention_raw_rows name. #}
with cutoff as (

    select {{ billing_as_of() }} - make_interval(months => {{ var('retention_months') }}) as cutoff

),

eligible as (

    select cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end, cutoff.cutoff
    from {{ ref('dim_billing_cycles') }} as cycles
    cross join cutoff
    where cycles.cycle_end <= cutoff.cutoff
      and cycles.cycle_id not in (select cycle_id from ops.retention_purges)

),

events as (

    select eligible.cycle_id, events.provider, events.metric, sum(events.quantity) as quantity,
           sum(events.cost_usd) as cost_usd, count(*) as events
    from {{ ref('fct_usage_events') }} as events
    inner join eligible
        on eligible.client_id = events.client_id
        and events.occurred_at >= eligible.cycle_start
        and events.occurred_at < eligible.cycle_end
    where events.occurred_at >= (select min(cycle_start) from eligible)  -- lets the occurred_at index serve
      and events.occurred_at < (select max(cycle_end) from eligible)
    group by eligible.cycle_id, events.provider, events.metric

),

stored as (

    select cycle_id, provider, metric, quantity, cost_usd, cycle_status
    from {{ ref('fct_cycle_usage') }}
    where cycle_id in (select cycle_id from eligible)

),

adjusted as (

    select cycle_id, provider, metric, sum(delta_quantity) as quantity, sum(delta_cost_usd) as cost_usd
    from {{ ref('fct_cycle_adjustments') }}
    group by cycle_id, provider, metric

),

compared as (

    select
        coalesce(events.cycle_id, stored.cycle_id) as cycle_id,
        stored.cycle_id is null as missing_aggregate,
        coalesce(stored.cycle_status, 'missing') <> 'closed' as not_closed,
        coalesce(events.cost_usd, 0) <> coalesce(stored.cost_usd, 0) + coalesce(adjusted.cost_usd, 0)
            or coalesce(events.quantity, 0) <> coalesce(stored.quantity, 0) + coalesce(adjusted.quantity, 0)
            as mismatch,
        coalesce(events.events, 0) as events,
        coalesce(events.cost_usd, 0) as cost_usd
    from events
    full outer join stored using (cycle_id, provider, metric)
    left join adjusted
        on adjusted.cycle_id = coalesce(events.cycle_id, stored.cycle_id)
        and adjusted.provider = coalesce(events.provider, stored.provider)
        and adjusted.metric = coalesce(events.metric, stored.metric)

),

decided as (

    select
        eligible.cycle_id,
        eligible.client_id,
        eligible.cycle_start,
        eligible.cycle_end,
        eligible.cutoff,
        sum(compared.events) as events,
        sum(compared.cost_usd) as cost_usd,
        concat_ws(', ',
            case when bool_or(compared.missing_aggregate) then 'aggregate missing' end,
            case when bool_or(compared.not_closed) then 'not closed' end,
            case when bool_or(compared.mismatch) then 'does not reconcile' end
        ) as refused_because
    from eligible
    inner join compared using (cycle_id)
    group by eligible.cycle_id, eligible.client_id, eligible.cycle_start, eligible.cycle_end, eligible.cutoff

)

select
    *,
    refused_because = '' as may_purge,
    {{ billing_as_of() }} as decided_as_of

from decided
