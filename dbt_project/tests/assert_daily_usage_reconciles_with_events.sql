{# Accounting identity: the daily rollup holds exactly the events' quantity, cost and count. It reads
   two models; meta.dagster.ref names the one it guards, so Dagster loads it as an asset check on
   marts/fct_daily_usage. #}
{{ config(meta={"dagster": {"ref": {"name": "fct_daily_usage"}}}) }}

{# Days before the retention horizon keep their aggregates while their events are purged. #}
with daily as (
    select sum(cost_usd) as cost_usd, sum(quantity) as quantity, coalesce(sum(event_count), 0) as events
    from {{ ref('fct_daily_usage') }}
    where usage_date > ({{ retention_horizon() }} at time zone 'UTC')::date
),

events as (
    select sum(cost_usd) as cost_usd, sum(quantity) as quantity, count(*) as events
    from {{ ref('fct_usage_events') }}
    where usage_date > ({{ retention_horizon() }} at time zone 'UTC')::date
)

select *
from daily cross join events
where daily.cost_usd is distinct from events.cost_usd
   or daily.quantity is distinct from events.quantity
   or daily.events is distinct from events.events
