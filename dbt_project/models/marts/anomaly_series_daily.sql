{# The series the anomaly rules test, one row per series x completed UTC day, zero-filled from the
   series' first day in the window (a day without usage is a 0, not a gap). Levels:

     client_metric    client x provider x metric   cost_usd, quantity, events   spike / drop
     provider_metric  provider x metric            quantity; ratio = cost per unit   spike / drop, unit_cost_drift
     provider         provider                     cost_usd; events             spike / drop, missing_data
     client           client, every provider       events                       missing_data
     client_provider  client x provider            events                       missing_data
     account          provider x collector account (Twilio account SID, Retell workspace)   events   missing_data
     quarantine       provider                     events = objects quarantined; ratio = their share   quarantine_growth

   A day whose events are not all priced yet (cost_status pending or expired) has no cost and no unit
   cost (null): a partial sum would look like a drop; it is tested once its prices settle. The
   'unattributed' client is no client here (unattributed_share watches it). #}
{{ config(materialized='view') }}

{% set read_start = anomaly_read_start() %}
{% set as_of_day = anomaly_as_of_day() %}

with daily as (

    select usage_date, client_id, provider, metric, quantity, cost_usd, event_count,
           coalesce(pending_events, 0) + coalesce(expired_events, 0) as unsettled_events
    from {{ ref('fct_daily_usage') }}
    where usage_date >= {{ read_start }} and usage_date < {{ as_of_day }}

),

objects as (

    select usage_date, provider, account, event_count, object_count
    from {{ ref('anomaly_objects_daily') }}
    where usage_date >= {{ read_start }} and usage_date < {{ as_of_day }}

),

billed_objects as (

    select usage_date, provider, sum(object_count) as objects
    from objects
    group by usage_date, provider

),

quarantined_objects as (

    select (coalesce(occurred_at, first_seen_at) at time zone 'UTC')::date as usage_date, provider,
           count(distinct coalesce(object_type || ':' || external_id, quarantine_id)) as objects  -- not metric rows
    from {{ ref('quarantine') }}
    where (coalesce(occurred_at, first_seen_at) at time zone 'UTC')::date >= {{ read_start }}
      and (coalesce(occurred_at, first_seen_at) at time zone 'UTC')::date < {{ as_of_day }}
    group by 1, 2

),

series_values as (

    select 'client_metric' as level, client_id, provider, metric, null::text as account, usage_date,
           sum(cost_usd) as cost_usd, sum(quantity) as quantity, sum(event_count) as events, null::numeric as ratio,
           sum(unsettled_events) as unsettled_events
    from daily
    where client_id <> 'unattributed'
    group by client_id, provider, metric, usage_date

    union all

    select 'provider_metric', null, provider, metric, null, usage_date,
           sum(cost_usd), sum(quantity), sum(event_count), sum(cost_usd) / nullif(sum(quantity), 0),
           sum(unsettled_events)
    from daily
    group by provider, metric, usage_date

    union all

    select 'provider', null, provider, null, null, usage_date, sum(cost_usd), null, sum(event_count), null,
           sum(unsettled_events)
    from daily
    group by provider, usage_date

    union all

    select 'client', client_id, null, null, null, usage_date, sum(cost_usd), null, sum(event_count), null,
           sum(unsettled_events)
    from daily
    where client_id <> 'unattributed'
    group by client_id, usage_date

    union all

    select 'client_provider', client_id, provider, null, null, usage_date, sum(cost_usd), null, sum(event_count),
           null, sum(unsettled_events)
    from daily
    where client_id <> 'unattributed'
    group by client_id, provider, usage_date

    union all

    select 'account', null, provider, null, account, usage_date, null, null, sum(event_count), null, null
    from objects
    where account is not null
    group by provider, account, usage_date

    union all

    select 'quarantine', null, coalesce(quarantined.provider, billed.provider), null, null,
           coalesce(quarantined.usage_date, billed.usage_date), null, null, coalesce(quarantined.objects, 0),
           coalesce(quarantined.objects, 0)::numeric / (coalesce(quarantined.objects, 0) + coalesce(billed.objects, 0)),
           null
    from quarantined_objects as quarantined
    full outer join billed_objects as billed
        on billed.provider = quarantined.provider and billed.usage_date = quarantined.usage_date

),

keyed as (

    select {{ surrogate_key(['level', 'client_id', 'provider', 'metric', 'account']) }} as series_id, *
    from series_values

),

series as (

    select series_id, level, client_id, provider, metric, account, min(usage_date) as first_day
    from keyed
    group by series_id, level, client_id, provider, metric, account

),

days as (

    select generate_series({{ read_start }}, {{ as_of_day }} - 1, interval '1 day')::date as usage_date

)

select
    series.series_id,
    series.level,
    series.client_id,
    series.provider,
    series.metric,
    series.account,
    days.usage_date,
    series.first_day,
    case when series.level not in ('account', 'quarantine') and coalesce(keyed.unsettled_events, 0) = 0
         then coalesce(keyed.cost_usd, 0) end as cost_usd,
    case when series.level in ('client_metric', 'provider_metric') then coalesce(keyed.quantity, 0) end as quantity,
    coalesce(keyed.events, 0) as events,
    case when coalesce(keyed.unsettled_events, 0) = 0 then keyed.ratio end as ratio,
    coalesce(keyed.unsettled_events, 0) as unsettled_events
from series
inner join days on days.usage_date >= series.first_day
left join keyed on keyed.series_id = series.series_id and keyed.usage_date = days.usage_date
