{# Σ cycle aggregates + Σ adjustments = Σ events in those cycles (quantity and cost, exactly). It reads
   several models; meta.dagster.ref names the one it guards, so Dagster loads it as an asset check on
   marts/fct_cycle_usage. #}
{{ config(meta={"dagster": {"ref": {"name": "fct_cycle_usage"}}}) }}

with in_cycles as (

    select sum(events.quantity) as quantity, sum(events.cost_usd) as cost_usd
    from {{ ref('fct_usage_events') }} as events
    inner join {{ ref('dim_billing_cycles') }} as cycles
        on cycles.client_id = events.client_id
        and events.occurred_at >= cycles.cycle_start
        and events.occurred_at < cycles.cycle_end
    where cycles.cycle_start < {{ billing_as_of() }}
      and cycles.cycle_id not in (select cycle_id from ops.retention_purges)

),

aggregated as (

    select sum(quantity) as quantity, sum(cost_usd) as cost_usd from {{ ref('fct_cycle_usage') }}
    where cycle_id not in (select cycle_id from ops.retention_purges)

),

adjusted as (

    select sum(delta_quantity) as quantity, sum(delta_cost_usd) as cost_usd from {{ ref('fct_cycle_adjustments') }}
    where cycle_id not in (select cycle_id from ops.retention_purges)

)

select *
from in_cycles, aggregated, adjusted
where coalesce(in_cycles.cost_usd, 0) <> coalesce(aggregated.cost_usd, 0) + coalesce(adjusted.cost_usd, 0)
   or coalesce(in_cycles.quantity, 0) <> coalesce(aggregated.quantity, 0) + coalesce(adjusted.quantity, 0)
