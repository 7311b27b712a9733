{# Every coverage comparison, unscored (fct_coverage_daily scores them): our figure against one we did not
   compute, per provider x account x client x UTC day x category x measure, for the days a build
   recomputes (coverage_days). docs/checks-and-anomalies.md#coverage says what is compared and why.

   - twilio: our call legs, SMS and MMS against Usage Records of the same subaccount and day, on the parent
     categories calls, sms and mms only (categories are hierarchical: calls = calls-inbound + calls-outbound
     + ...; summing a parent with its children would count twice). SIP and Client calls bill under other
     categories, so they are left out of ours (structural reason sip_or_client_calls).
   - openrouter: the change of /credits total_usage (category credits, per account) and of each key's
     lifetime usage (category key) between two readings, against our activity of the days in between.
     A reading taken on day D+1 closes day D: the keys' usage_daily (today's part) is taken off when the
     same collection read them. A comparison spanning several days (readings missed) is reported on its
     last day (multi_day).
   - retell: calls our polling listed against calls the webhooks delivered (webhook_calls, from the first
     day webhooks arrived for the workspace), and Retell phone calls against their Twilio legs
     (twilio_legs, from fct_calls), per client.

   Our side comes per day from coverage_twilio_daily and coverage_retell_daily (incremental), so a build
   reads a few rows per day of the window, not its events.

   settled: the provider's figure is final for the day (its as_of past the day's end) and nothing in it is
   pending a price; otherwise unsettled_reason says why. #}
{# A table, not a view: a view over several staging views is dropped by each of their rebuilds (cascade),
   and two parallel rebuilds then deadlock on it. #}

{% set as_of_day = anomaly_as_of_day() %}

with assignments as (

    select resource_type, resource_id, client_id, valid_from, valid_to
    from {{ ref('stg_directory__resource_assignments') }}

),

collectors as (

    select source, resource, account, last_success_at from {{ source('ops', 'collector_state') }}

),

quarantined as (

    -- quarantined objects per provider, account and day: a likely cause of a gap
    select
        provider,
        coalesce(details ->> 'account_sid', details ->> 'workspace', details ->> 'AccountSid') as account,
        (occurred_at at time zone 'UTC')::date as usage_date,
        count(*) as objects
    from {{ ref('quarantine') }}
    where occurred_at is not null
    group by 1, 2, 3

),

-- twilio --------------------------------------------------------------------------------------------

twilio_records as (

    select
        account_sid as account,
        start_date as usage_date,
        category,
        usage_count,
        usage_quantity,
        price,
        as_of
    from {{ ref('stg_twilio__usage_records') }}
    where start_date = end_date
      and {{ coverage_days('start_date_iso', kind='iso_text') }}

),

twilio_provider_days as (

    select account, usage_date, max(as_of) as provider_as_of
    from twilio_records
    group by account, usage_date

),

twilio_ours as (

    select account, usage_date, category, objects, quantity, cost_usd, sip_or_client_objects, unbilled_objects,
           expired_events
    from {{ ref('coverage_twilio_daily') }}
    where category is not null and {{ coverage_days('usage_date') }}

),

twilio_pending as (

    select account, usage_date, sum(pending_events) as pending_events
    from {{ ref('coverage_twilio_daily') }}
    where {{ coverage_days('usage_date') }}
    group by account, usage_date

),

twilio_pairs as (

    select
        coalesce(records.account, ours.account) as account,
        coalesce(records.usage_date, ours.usage_date) as usage_date,
        coalesce(records.category, ours.category) as category,
        records.category is not null as reported,
        records.usage_count,
        records.usage_quantity,
        records.price,
        coalesce(ours.objects, 0) as objects,
        coalesce(ours.quantity, 0) as quantity,
        coalesce(ours.cost_usd, 0) as cost_usd,
        coalesce(ours.sip_or_client_objects, 0) as sip_or_client_objects,
        coalesce(ours.unbilled_objects, 0) as unbilled_objects,
        coalesce(ours.expired_events, 0) as expired_events
    from (select * from twilio_records where category in ('calls', 'sms', 'mms')) as records
    full outer join twilio_ours as ours
        on ours.account = records.account and ours.usage_date = records.usage_date
        and ours.category = records.category

),

twilio_comparisons as (

    select
        'twilio' as provider,
        pairs.account,
        pairs.usage_date,
        pairs.category,
        measure.name as measure,
        measure.ours,
        case when pairs.reported then measure.theirs end as theirs,
        pairs.objects as ours_objects,
        case when measure.name = 'count' then pairs.unbilled_objects else 0 end as unbilled_objects,
        pairs.expired_events,
        case when pairs.sip_or_client_objects > 0 then 'sip_or_client_calls' end as structural_reason,
        days.provider_as_of,
        case
            when not pairs.reported then 'no_provider_total'
            when days.provider_as_of < {{ coverage_day_end('pairs.usage_date') }} then 'provider_not_final'
            when pending.pending_events > 0 then 'pending_prices'
        end as unsettled_reason
    from twilio_pairs as pairs
    cross join lateral (
        values
            ('count', pairs.objects::numeric, pairs.usage_count),
            ('billed_minutes', pairs.quantity, pairs.usage_quantity),
            ('segments', pairs.quantity, pairs.usage_quantity),
            ('cost_usd', pairs.cost_usd, pairs.price)
    ) as measure (name, ours, theirs)
    left join twilio_provider_days as days
        on days.account = pairs.account and days.usage_date = pairs.usage_date
    left join twilio_pending as pending
        on pending.account = pairs.account and pending.usage_date = pairs.usage_date
    where case pairs.category
        when 'calls' then measure.name in ('count', 'billed_minutes', 'cost_usd')
        when 'sms' then measure.name in ('count', 'segments', 'cost_usd')
        else measure.name in ('count', 'cost_usd')
    end

),

-- openrouter ----------------------------------------------------------------------------------------

key_versions as (

    select
        api_key_hash,
        account,
        created_at,
        read_at,
        (read_at at time zone 'UTC')::date - 1 as close_day,
        lifetime_usage_usd - coalesce(usage_today_usd, 0) as through_close_usd,
        usage_today_usd
    from {{ ref('snap_openrouter__keys') }}

),

key_accounts as (

    select distinct on (api_key_hash) api_key_hash, account
    from key_versions
    order by api_key_hash, read_at desc

),

-- each key's lifetime usage through the end of a day: the latest reading taken the day after; and 0 the
-- day before its creation, when /activity still reached its first day at our first reading
key_points as (

    select distinct on (api_key_hash, close_day) api_key_hash, close_day, through_close_usd as cumulative_usd, read_at
    from key_versions
    order by api_key_hash, close_day, read_at desc

),

key_origins as (

    select api_key_hash, (created_at at time zone 'UTC')::date - 1 as close_day, 0::numeric as cumulative_usd,
           created_at as read_at
    from (
        select distinct on (api_key_hash) api_key_hash, created_at, read_at
        from key_versions
        order by api_key_hash, read_at
    ) as first_reading
    where created_at >= read_at - make_interval(days => {{ coverage_threshold('openrouter_activity_reach_days') }})
      and (created_at at time zone 'UTC')::date - 1 < (read_at at time zone 'UTC')::date - 1

),

-- the account's lifetime usage through the end of a day: a /credits snapshot taken the day after, less the
-- keys' usage of that day when the same collection read them (then exact, and preferred), else the day's
-- first snapshot (off by the usage since midnight)
credit_snapshots as (

    select
        credits.account,
        credits.read_at,
        (credits.read_at at time zone 'UTC')::date - 1 as close_day,
        credits.total_usage_usd - coalesce(today.usage_today_usd, 0) as cumulative_usd,
        today.usage_today_usd is not null as exact
    from {{ ref('stg_openrouter__credits') }} as credits
    left join (
        select account, read_at, sum(usage_today_usd) as usage_today_usd
        from key_versions
        group by account, read_at
    ) as today on today.account = credits.account and today.read_at = credits.read_at

),

credit_points as (

    select distinct on (account, close_day) account, close_day, cumulative_usd, read_at, exact
    from credit_snapshots
    order by account, close_day, exact desc,
             case when exact then -extract(epoch from read_at) else extract(epoch from read_at) end

),

openrouter_points as (

    select 'key' as category, key_accounts.account, points.api_key_hash, points.close_day, points.cumulative_usd,
           points.read_at
    from (select * from key_points union all select * from key_origins) as points
    inner join key_accounts on key_accounts.api_key_hash = points.api_key_hash

    union all

    select 'credits', account, null, close_day, cumulative_usd, read_at
    from credit_points

),

openrouter_intervals as (

    select * from (
        select
            category,
            account,
            api_key_hash,
            lag(close_day) over reading + 1 as first_day,
            close_day as last_day,
            cumulative_usd - lag(cumulative_usd) over reading as theirs,
            read_at as provider_as_of
        from openrouter_points
        window reading as (partition by category, account, api_key_hash order by close_day)
    ) as intervals
    where first_day is not null

),

openrouter_activity as (

    select
        key_accounts.account,
        activity.api_key_hash,
        activity.activity_date as usage_date,
        count(*) as objects,
        sum(events.cost_usd) as cost_usd
    from {{ ref('fct_usage_events') }} as events
    inner join {{ ref('stg_openrouter__activity') }} as activity on activity.activity_id = events.external_id
    left join key_accounts on key_accounts.api_key_hash = activity.api_key_hash
    where events.provider = 'openrouter' and events.metric = 'llm_tokens'
    group by key_accounts.account, activity.api_key_hash, activity.activity_date

),

openrouter_compared_intervals as (

    select
        intervals.category,
        intervals.account,
        intervals.api_key_hash,
        intervals.last_day as usage_date,
        coalesce(sum(activity.cost_usd), 0) as ours,
        intervals.theirs,
        coalesce(sum(activity.objects), 0) as ours_objects,
        case when intervals.first_day < intervals.last_day then 'multi_day' end as structural_reason,
        intervals.provider_as_of,
        null::text as unsettled_reason
    from openrouter_intervals as intervals
    left join openrouter_activity as activity
        on activity.account is not distinct from intervals.account
        and (intervals.category = 'credits' or activity.api_key_hash = intervals.api_key_hash)
        and activity.usage_date between intervals.first_day and intervals.last_day
    where {{ coverage_days('intervals.last_day') }}
    group by intervals.category, intervals.account, intervals.api_key_hash, intervals.first_day,
             intervals.last_day, intervals.theirs, intervals.provider_as_of

),

-- days of activity no pair of readings covers yet (or ever, before the first reading)
openrouter_uncovered as (

    select
        scope.category,
        activity.account,
        scope.api_key_hash,
        activity.usage_date,
        sum(activity.cost_usd) as ours,
        null::numeric as theirs,
        sum(activity.objects) as ours_objects,
        null::text as structural_reason,
        null::timestamptz as provider_as_of,
        'no_reading' as unsettled_reason
    from openrouter_activity as activity
    cross join lateral (values ('key', activity.api_key_hash), ('credits', null)) as scope (category, api_key_hash)
    where {{ coverage_days('activity.usage_date') }}
      and not exists (
        select 1 from openrouter_intervals as intervals
        where intervals.category = scope.category
          and intervals.account is not distinct from activity.account
          and intervals.api_key_hash is not distinct from scope.api_key_hash
          and activity.usage_date between intervals.first_day and intervals.last_day)
    group by scope.category, activity.account, scope.api_key_hash, activity.usage_date

),

openrouter_comparisons as (

    select
        'openrouter' as provider,
        case when compared.category = 'key' then compared.account || '/' || left(compared.api_key_hash, 12)
             else compared.account end as account,
        compared.api_key_hash,
        compared.usage_date,
        compared.category,
        'cost_usd' as measure,
        compared.ours,
        compared.theirs,
        compared.ours_objects,
        0 as unbilled_objects,
        0 as expired_events,
        compared.structural_reason,
        compared.provider_as_of,
        compared.unsettled_reason
    from (
        select * from openrouter_compared_intervals
        union all
        select * from openrouter_uncovered
    ) as compared

),

-- retell --------------------------------------------------------------------------------------------

retell_days as (

    select * from {{ ref('coverage_retell_daily') }}
    where {{ coverage_days('usage_date') }}

),

-- a call delivered by webhook only does not say its workspace: its agent's, else its client's
agent_workspaces as (

    select retell_agent_id, max(workspace) as workspace
    from retell_days
    where workspace is not null
    group by retell_agent_id

),

client_workspaces as (

    select client_id, max(workspace) as workspace
    from retell_days
    where workspace is not null
    group by client_id

),

retell_located as (

    select
        days.*,
        coalesce(days.workspace, agents.workspace, clients.workspace, 'unknown') as account
    from retell_days as days
    left join agent_workspaces as agents on agents.retell_agent_id = days.retell_agent_id
    left join client_workspaces as clients on clients.client_id = days.client_id

),

retell_collected as (

    select account, min(last_success_at) as last_success_at
    from collectors
    where source = 'retell'
    group by account

),

webhooks_since as (

    select account, min(usage_date) as first_day
    from retell_located
    where delivered_calls > 0
    group by account

),

webhook_counts as (

    select
        calls.account,
        calls.client_id,
        calls.usage_date,
        sum(calls.polled_calls) as ours,
        sum(calls.delivered_calls) as theirs,
        sum(calls.pending_calls) as pending_events
    from retell_located as calls
    inner join webhooks_since as since on since.account = calls.account and calls.usage_date >= since.first_day
    where {{ coverage_days('calls.usage_date') }}
    group by calls.account, calls.client_id, calls.usage_date

),

last_delivery as (

    select max(observed_at) as received_at from {{ ref('stg_retell__webhook_events') }}

),

pending_by_client_day as (

    select client_id, usage_date, count(*) as pending_events
    from {{ ref('fct_usage_events') }}
    where provider in ('retell', 'twilio') and cost_status = 'pending' and {{ coverage_days('usage_date') }}
    group by client_id, usage_date

),

phone_calls as (

    select
        coalesce(calls.retell_workspace, agents.workspace, clients.workspace, 'unknown') as account,
        calls.client_id,
        (calls.started_at at time zone 'UTC')::date as usage_date,
        count(distinct calls.call_id) filter (
            where calls.link_status in ('matched', 'retell_leg_missing', 'retell_without_telephony_id')) as ours,
        count(distinct calls.twilio_call_sid) filter (
            where calls.link_status in ('matched', 'twilio_without_retell_call')) as theirs
    from {{ ref('fct_calls') }} as calls
    left join agent_workspaces as agents on agents.retell_agent_id = calls.retell_agent_id
    left join client_workspaces as clients on clients.client_id = calls.client_id
    where calls.link_status <> 'web_call'
      and {{ coverage_days('calls.started_at', kind='timestamp') }}
    group by 1, 2, 3

),

twilio_collected as (

    select min(last_success_at) as last_success_at
    from collectors
    where source = 'twilio' and resource = 'calls'

),

retell_comparisons as (

    select
        'retell' as provider,
        counts.account,
        counts.client_id,
        counts.usage_date,
        'webhook_calls' as category,
        'count' as measure,
        counts.ours::numeric as ours,
        counts.theirs::numeric as theirs,
        counts.ours as ours_objects,
        least(collected.last_success_at, delivery.received_at) as provider_as_of,
        case
            when least(collected.last_success_at, delivery.received_at) is null
                 or least(collected.last_success_at, delivery.received_at) < {{ coverage_day_end('counts.usage_date') }}
                then 'provider_not_final'
            when counts.pending_events > 0 then 'pending_prices'
        end as unsettled_reason
    from webhook_counts as counts
    cross join last_delivery as delivery
    left join retell_collected as collected on collected.account = counts.account

    union all

    select
        'retell',
        calls.account,
        calls.client_id,
        calls.usage_date,
        'twilio_legs',
        'count',
        calls.ours::numeric,
        calls.theirs::numeric,
        calls.ours,
        least(collected.last_success_at, twilio.last_success_at),
        case
            when least(collected.last_success_at, twilio.last_success_at) is null
                 or least(collected.last_success_at, twilio.last_success_at) < {{ coverage_day_end('calls.usage_date') }}
                then 'provider_not_final'
            when pending.pending_events > 0 then 'pending_prices'
        end
    from phone_calls as calls
    cross join twilio_collected as twilio
    left join retell_collected as collected on collected.account = calls.account
    left join pending_by_client_day as pending
        on pending.client_id = calls.client_id and pending.usage_date = calls.usage_date

),

-- all -----------------------------------------------------------------------------------------------

comparisons as (

    select
        provider, account,
        (select case when count(distinct owner.client_id) = 1 then min(owner.client_id) end
         from assignments as owner
         where owner.resource_type = 'twilio_subaccount' and owner.resource_id = twilio.account
           and owner.valid_from < {{ coverage_day_end('twilio.usage_date') }}
           and (owner.valid_to is null or owner.valid_to > twilio.usage_date::timestamp at time zone 'UTC'))
            as client_id,
        usage_date, category, measure, ours, theirs, ours_objects, unbilled_objects, expired_events,
        structural_reason, provider_as_of, unsettled_reason
    from twilio_comparisons as twilio

    union all

    select
        provider, account,
        case when category = 'key' then (
            select case when count(distinct owner.client_id) = 1 then min(owner.client_id) end
            from assignments as owner
            where owner.resource_type = 'openrouter_key' and owner.resource_id = openrouter.api_key_hash
              and owner.valid_from < {{ coverage_day_end('openrouter.usage_date') }}
              and (owner.valid_to is null or owner.valid_to > openrouter.usage_date::timestamp at time zone 'UTC'))
        end,
        usage_date, category, measure, ours, theirs, ours_objects, unbilled_objects, expired_events,
        structural_reason, provider_as_of, unsettled_reason
    from openrouter_comparisons as openrouter

    union all

    select
        provider, account, client_id, usage_date, category, measure, ours, theirs, ours_objects,
        0, 0, null, provider_as_of, unsettled_reason
    from retell_comparisons

)

select
    comparisons.provider,
    comparisons.account,
    comparisons.client_id,
    comparisons.usage_date,
    comparisons.category,
    comparisons.measure,
    comparisons.ours::numeric as ours,
    comparisons.theirs::numeric as theirs,
    comparisons.ours_objects::bigint as ours_objects,
    comparisons.unbilled_objects::bigint as unbilled_objects,
    comparisons.expired_events::bigint as expired_events,
    coalesce(quarantined.objects, 0)::bigint as quarantined_objects,
    comparisons.structural_reason,
    comparisons.provider_as_of,
    comparisons.unsettled_reason is null as settled,
    comparisons.unsettled_reason
from comparisons
left join quarantined
    on quarantined.provider = comparisons.provider
    and quarantined.account = split_part(comparisons.account, '/', 1)
    and quarantined.usage_date = comparisons.usage_date
where comparisons.usage_date <= {{ as_of_day }}
