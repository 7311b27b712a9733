{# UTC day x client x agent x provider x metric. #}
select
    usage_date,
    client_id,
    agent_id,
    provider,
    metric,
    unit,
    sum(quantity) as quantity,
    sum(cost_usd) as cost_usd,
    count(*) as event_count

from {{ ref('fct_usage_events') }}
group by usage_date, client_id, agent_id, provider, metric, unit
