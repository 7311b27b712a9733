{# fct_daily_client_usage is fct_daily_usage without the agent: equal per UTC day, client, provider and metric.
   meta.dagster.ref makes it an asset check on marts/fct_daily_client_usage. #}
{{ config(meta={"dagster": {"ref": {"name": "fct_daily_client_usage"}}}) }}

with by_client as (
    select usage_date, client_id, provider, metric, sum(cost_usd) as cost_usd, sum(quantity) as quantity,
           sum(event_count) as events, sum(pending_events) as pending, sum(expired_events) as expired
    from {{ ref('fct_daily_client_usage') }}
    group by usage_date, client_id, provider, metric
),

by_agent as (
    select usage_date, client_id, provider, metric, sum(cost_usd) as cost_usd, sum(quantity) as quantity,
           sum(event_count) as events, sum(pending_events) as pending, sum(expired_events) as expired
    from {{ ref('fct_daily_usage') }}
    group by usage_date, client_id, provider, metric
)

select *
from by_client full outer join by_agent using (usage_date, client_id, provider, metric)
where by_client.cost_usd is distinct from by_agent.cost_usd
   or by_client.quantity is distinct from by_agent.quantity
   or by_client.events is distinct from by_agent.events
   or by_client.pending is distinct from by_agent.pending
   or by_client.expired is distinct from by_agent.expired
