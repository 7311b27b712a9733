{# Accounting identity: the hourly rollup holds exactly the events' quantity, cost and count, per UTC day and
   client (the hours themselves are checked against the events by tests/test_api.py). meta.dagster.ref makes
   it an asset check on marts/fct_hourly_usage. #}
{{ config(meta={"dagster": {"ref": {"name": "fct_hourly_usage"}}}) }}

{# Days before the retention horizon keep their aggregates while their events are purged. #}
with hourly as (
    select usage_date, client_id, sum(cost_usd) as cost_usd, sum(quantity) as quantity, sum(event_count) as events
    from {{ ref('fct_hourly_usage') }}
    where usage_date > ({{ retention_horizon() }} at time zone 'UTC')::date
    group by usage_date, client_id
),

events as (
    select usage_date, client_id, sum(cost_usd) as cost_usd, sum(quantity) as quantity, count(*) as events
    from {{ ref('fct_usage_events') }}
    where usage_date > ({{ retention_horizon() }} at time zone 'UTC')::date
    group by usage_date, client_id
)

select *
from hourly full outer join events using (usage_date, client_id)
where hourly.cost_usd is distinct from events.cost_usd
   or hourly.quantity is distinct from events.quantity
   or hourly.events is distinct from events.events
