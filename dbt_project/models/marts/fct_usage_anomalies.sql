{# One row per anomaly finding on a completed UTC day (docs/checks-and-anomalies.md#anomalies): spikes and
   drops against a robust baseline (anomaly_baselines), series too young to test (insufficient_history),
   silent providers, accounts and clients (missing_data, told apart by ops.collector_state), unattributed
   cost, unit-cost drift, quarantine growth, orphan calls, prices that never came (pending_expired), and
   coverage gaps against the providers' own totals (coverage_gap, from fct_coverage_daily). Thresholds: var('anomaly_thresholds'),
   read through anomaly_threshold().

   Incremental on anomaly_id, a stable key of what was found (kind, day, client, agent, provider,
   account, metric, measure): each build recomputes the last evaluation_days and rewrites the findings it
   makes, keeping first_seen_at (the first build that found it) and moving last_seen_at to this build.
   A finding a later build no longer makes keeps its last_seen_at: it is resolved, not deleted. #}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='anomaly_id',
    on_schema_change='append_new_columns',
    indexes=[{'columns': ['anomaly_id'], 'unique': True}, {'columns': ['usage_date']}],
) }}

{% set as_of_day = anomaly_as_of_day() %}
{% set evaluation_start = anomaly_evaluation_start() %}

with baselines as (

    select * from {{ ref('anomaly_baselines') }}
    where usage_date >= {{ evaluation_start }} and usage_date < {{ as_of_day }}

),

-- spike / drop ----------------------------------------------------------------------------------------

changes as (

    select level, client_id, provider, metric, usage_date, 'cost_usd' as measure,
           cost_usd as observed, cost_usd_median as expected, cost_usd_mad as mad, cost_usd_z as score,
           points, same_weekday, {{ cost_change_severity() }} as severity
    from baselines
    where enough_history

    union all

    select level, client_id, provider, metric, usage_date, 'quantity',
           quantity, quantity_median, quantity_mad, quantity_z,
           points, same_weekday, {{ quantity_change_severity() }}
    from baselines
    where enough_history

),

-- missing_data ----------------------------------------------------------------------------------------

missing_candidates as (

    select level, client_id, provider, account, usage_date, events as observed, events_median as expected,
           points, same_weekday
    from baselines
    where level in ('provider', 'client', 'client_provider', 'account')
      and enough_history
      and events = 0
      and events_median >= {{ anomaly_threshold('missing_min_expected_events', 'client_id', 'provider', none) }}

),

-- The most general silence explains the others: a silent provider those of its clients and accounts; a
-- silent client its client x provider silences; an account is reported only when some client of it is not.
account_clients as (

    select distinct provider, account, client_id
    from {{ ref('anomaly_objects_daily') }}
    where usage_date >= {{ anomaly_read_start() }} and usage_date < {{ as_of_day }}
      and provider in ('twilio', 'retell') and client_id <> 'unattributed'

),

missing as (

    select candidate.*
    from missing_candidates as candidate
    where case candidate.level
        when 'provider' then true
        when 'client' then
            not exists (select 1 from missing_candidates as pair
                        where pair.level = 'client_provider' and pair.client_id = candidate.client_id
                          and pair.usage_date = candidate.usage_date)
            or exists (select 1 from missing_candidates as pair
                       where pair.level = 'client_provider' and pair.client_id = candidate.client_id
                         and pair.usage_date = candidate.usage_date
                         and not exists (select 1 from missing_candidates as whole
                                         where whole.level = 'provider' and whole.provider = pair.provider
                                           and whole.usage_date = pair.usage_date))
        when 'client_provider' then
            not exists (select 1 from missing_candidates as wider
                        where wider.usage_date = candidate.usage_date
                          and ((wider.level = 'provider' and wider.provider = candidate.provider)
                               or (wider.level = 'client' and wider.client_id = candidate.client_id)))
        when 'account' then
            not exists (select 1 from missing_candidates as whole
                        where whole.level = 'provider' and whole.provider = candidate.provider
                          and whole.usage_date = candidate.usage_date)
            and (not exists (select 1 from account_clients as owner
                             where owner.provider = candidate.provider and owner.account = candidate.account)
                 or exists (select 1 from account_clients as owner
                            where owner.provider = candidate.provider and owner.account = candidate.account
                              and not exists (select 1 from missing_candidates as silent
                                              where silent.usage_date = candidate.usage_date
                                                and silent.client_id = owner.client_id
                                                and (silent.level = 'client'
                                                     or (silent.level = 'client_provider'
                                                         and silent.provider = candidate.provider)))))
    end

),

-- The collector accounts behind each client: Twilio subaccounts and Retell workspaces its events came
-- from, OpenRouter keys assigned to it (collector account '<account>/<first 12 of the key hash>').
client_collector_accounts as (

    select provider, client_id, account, null::text as account_suffix from account_clients
    union all
    select distinct 'openrouter', client_id, null, '/' || left(resource_id, 12)
    from {{ ref('stg_directory__resource_assignments') }}
    where resource_type = 'openrouter_key'

),

collectors as (

    select
        source as provider,
        resource,
        account,
        last_success_at,
        last_error_at,
        last_error,
        warning
    from {{ source('ops', 'collector_state') }}
    where source in ('retell', 'twilio', 'openrouter')
      and (resource = '*' or (source, resource) in (('retell', 'calls'), ('twilio', 'calls'),
                                                     ('twilio', 'messages'), ('openrouter', 'activity')))

),

-- Every collector row behind a silence, with what is wrong with it for that day (null: fine).
missing_collectors as (

    select
        silence.level,
        silence.client_id,
        silence.provider as silent_provider,
        silence.account as silent_account,
        silence.usage_date,
        collector.provider,
        collector.account,
        case
            when collector.last_success_at is null then 'never collected'
            when collector.last_error_at >= collector.last_success_at
                then 'failing since ' || to_char(collector.last_error_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                     || ' UTC' || coalesce(' (' || left(collector.last_error, 80) || ')', '')
            when collector.warning is not null then 'lost data (' || left(collector.warning, 80) || ')'
            when collector.last_success_at < (silence.usage_date + 1)::timestamp at time zone 'UTC'
                then 'no success since the day ended (last '
                     || to_char(collector.last_success_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC)'
            when collector.last_success_at < {{ billing_as_of() }} - make_interval(mins =>
                    ({{ anomaly_threshold('collector_stale_after_minutes', none, 'collector.provider', none) }})::int)
                then 'stale (last success '
                     || to_char(collector.last_success_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC)'
        end as problem
    from missing as silence
    inner join collectors as collector
        on collector.provider = coalesce(silence.provider, collector.provider)
    where case
        when silence.level = 'provider' then true
        when silence.level = 'account' then collector.account = silence.account or collector.resource = '*'
        else
            -- a client's own accounts when they are known, else every account of the provider
            (silence.level = 'client_provider' or exists (
                select 1 from baselines as used
                where used.level = 'client_provider' and used.client_id = silence.client_id
                  and used.provider = collector.provider and used.usage_date = silence.usage_date
                  and used.events_median > 0))
            and (collector.resource = '*'
                 or not exists (select 1 from client_collector_accounts as own
                                where own.client_id = silence.client_id and own.provider = collector.provider)
                 or exists (select 1 from client_collector_accounts as own
                            where own.client_id = silence.client_id and own.provider = collector.provider
                              and (own.account = collector.account
                                   or collector.account like '%' || own.account_suffix)))
    end

),

missing_causes as (

    select
        level, client_id, silent_provider, silent_account, usage_date,
        count(*) as collector_accounts,
        count(problem) as problem_accounts,
        string_agg(provider || ' ' || account || ': ' || problem, '; ' order by provider, account)
            filter (where problem is not null) as problems
    from missing_collectors
    group by level, client_id, silent_provider, silent_account, usage_date

),

missing_findings as (

    select
        'missing_data' as kind,
        case when coalesce(cause.problem_accounts, 0) > 0 or cause.collector_accounts is null
             then 'error' else 'warn' end as severity,
        silence.usage_date,
        silence.client_id,
        null::text as agent_id,
        silence.provider,
        silence.account,
        null::text as metric,
        'events' as measure,
        silence.observed,
        silence.expected,
        null::numeric as score,
        {{ anomaly_subject('silence.level', 'silence.client_id', 'silence.provider', 'null', 'silence.account') }}
            || ': no usage on ' || silence.usage_date::text || ' where its baseline expects '
            || {{ anomaly_number('silence.expected') }} || ' events a day (' || {{ anomaly_baseline_text('silence.points', 'silence.same_weekday') }}
            || '); ' || case
                when cause.collector_accounts is null then 'no collector state for it: it was never collected'
                when cause.problem_accounts > 0 then 'collector stale or failing: ' || cause.problems
                else 'collector fresh (' || cause.collector_accounts::text
                     || ' account(s) collected since): the provider reported nothing'
            end as explanation,
        jsonb_build_object(
            'level', silence.level,
            'cause', case when cause.collector_accounts is null then 'no_collector_state'
                          when cause.problem_accounts > 0 then 'collector_stale_or_failing'
                          else 'provider_quiet' end,
            'collector_accounts', coalesce(cause.collector_accounts, 0),
            'problem_accounts', coalesce(cause.problem_accounts, 0),
            'baseline_points', silence.points,
            'same_weekday', silence.same_weekday
        ) as details
    from missing as silence
    left join missing_causes as cause
        on cause.level = silence.level and cause.usage_date = silence.usage_date
        and cause.client_id is not distinct from silence.client_id
        and cause.silent_provider is not distinct from silence.provider
        and cause.silent_account is not distinct from silence.account

),

change_findings as (

    select
        case when change.observed > change.expected then 'spike' else 'drop' end as kind,
        change.severity,
        change.usage_date,
        change.client_id,
        null::text as agent_id,
        change.provider,
        null::text as account,
        change.metric,
        change.measure,
        change.observed,
        change.expected,
        change.score,
        case when change.observed > change.expected then 'spike' else 'drop' end || ': '
            || {{ anomaly_subject('change.level', 'change.client_id', 'change.provider', 'change.metric', 'null') }}
            || ' ' || change.measure || ' was ' || {{ anomaly_number('change.observed') }} || ' on ' || change.usage_date::text
            || ' against a median of ' || {{ anomaly_number('change.expected') }} || ' over '
            || {{ anomaly_baseline_text('change.points', 'change.same_weekday') }}
            || case when change.expected <> 0
                    then ' (' || case when change.observed > change.expected then '+' else '' end
                         || round(100 * (change.observed - change.expected) / abs(change.expected))::text || ' %'
                    else ' (from nothing' end
            || case when change.score is null then ', baseline without spread)'
                    else ', modified z ' || round(change.score, 1)::text || ')' end as explanation,
        jsonb_build_object('level', change.level, 'baseline_points', change.points,
                           'same_weekday', change.same_weekday, 'mad', change.mad) as details
    from changes as change
    where change.severity is not null
      -- a fall to nothing that missing_data reports (the series' provider, client or client x provider
      -- is silent) is not reported twice
      and not (change.observed = 0 and exists (
            select 1 from missing_candidates as silence
            where silence.usage_date = change.usage_date
              and ((silence.level = 'provider' and silence.provider = change.provider)
                   or (silence.level = 'client' and silence.client_id = change.client_id)
                   or (silence.level = 'client_provider' and silence.client_id = change.client_id
                       and silence.provider = change.provider))))

),

-- insufficient_history ----------------------------------------------------------------------------------

young_findings as (

    select
        'insufficient_history' as kind,
        'info' as severity,
        usage_date,
        client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        metric,
        case when level = 'provider_metric' then 'quantity' else 'cost_usd' end as measure,
        case when level = 'provider_metric' then quantity else cost_usd end as observed,
        null::numeric as expected,
        null::numeric as score,
        {{ anomaly_subject('level', 'client_id', 'provider', 'metric', 'null') }} || ': not tested on '
            || usage_date::text || ', only ' || points_all::text || ' baseline day(s) since ' || first_day::text
            || ' (needs ' || {{ anomaly_setting('min_baseline_points') }} || ', or '
            || {{ anomaly_setting('min_same_weekday_points') }} || ' on the same weekday)' as explanation,
        jsonb_build_object('level', level, 'baseline_points', points_all,
                           'same_weekday_points', points_same_weekday, 'first_day', first_day) as details
    from baselines
    where level in ('client_metric', 'provider_metric', 'provider') and not enough_history

),

-- unit_cost_drift ---------------------------------------------------------------------------------------

unit_cost_findings as (

    select
        'unit_cost_drift' as kind,
        case when abs(ratio - ratio_median)
                  >= {{ anomaly_threshold('unit_cost_error_change', none) }} * ratio_median
             then 'error' else 'warn' end as severity,
        usage_date,
        null::text as client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        metric,
        'unit_cost_usd' as measure,
        ratio as observed,
        ratio_median as expected,
        ratio_z as score,
        provider || ' ' || metric || ': cost per unit ' || round(ratio, 8)::text || ' USD on ' || usage_date::text
            || ' against a median of ' || round(ratio_median, 8)::text || ' over '
            || {{ anomaly_baseline_text('points', 'same_weekday') }} || ' ('
            || case when ratio > ratio_median then '+' else '' end
            || round(100 * (ratio - ratio_median) / ratio_median, 1)::text || ' %'
            || case when ratio_z is null then ', baseline without spread)'
                    else ', modified z ' || round(ratio_z, 1)::text || ')' end as explanation,
        jsonb_build_object('quantity', quantity, 'cost_usd', cost_usd, 'baseline_points', points,
                           'same_weekday', same_weekday) as details
    from baselines
    where level = 'provider_metric'
      and enough_history
      and ratio is not null
      and ratio_median > 0
      and quantity >= {{ anomaly_threshold('unit_cost_min_quantity', none) }}
      and abs(ratio - ratio_median) >= {{ anomaly_threshold('unit_cost_min_change', none) }} * ratio_median
      and (ratio_z is null or abs(ratio_z) >= {{ anomaly_threshold('z_warn', none) }})

),

-- quarantine_growth -------------------------------------------------------------------------------------

quarantine_findings as (

    select
        'quarantine_growth' as kind,
        case when ratio - coalesce(ratio_median, 0)
                  >= {{ anomaly_threshold('quarantine_error_share_increase', none, metric=none) }}
             then 'error' else 'warn' end as severity,
        usage_date,
        null::text as client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        null::text as metric,
        'share' as measure,
        ratio as observed,
        coalesce(ratio_median, 0) as expected,
        ratio_z as score,
        provider || ': ' || events::text || ' object(s) quarantined on ' || usage_date::text || ', '
            || {{ anomaly_percent('ratio') }} || ' of its objects, against a median share of '
            || {{ anomaly_percent('coalesce(ratio_median, 0)') }} || ' (see marts.quarantine)' as explanation,
        jsonb_build_object('quarantined_objects', events, 'baseline_points', points) as details
    from baselines
    where level = 'quarantine'
      and ratio is not null
      and events >= {{ anomaly_threshold('quarantine_min_objects', none, metric=none) }}
      and ratio - coalesce(ratio_median, 0)
          >= {{ anomaly_threshold('quarantine_min_share_increase', none, metric=none) }}

),

-- unattributed_share ------------------------------------------------------------------------------------

unattributed as (

    select
        usage_date,
        provider,
        coalesce(sum(cost_usd) filter (where client_id = 'unattributed'), 0) as unattributed_cost,
        sum(cost_usd) as total_cost,
        coalesce(sum(event_count) filter (where client_id = 'unattributed'), 0) as unattributed_events
    from {{ ref('fct_daily_usage') }}
    where usage_date >= {{ evaluation_start }} and usage_date < {{ as_of_day }}
    group by usage_date, provider

),

unattributed_findings as (

    select
        'unattributed_share' as kind,
        case when share >= {{ anomaly_threshold('unattributed_share_error', "'unattributed'", metric=none) }}
             then 'error' else 'warn' end as severity,
        usage_date,
        'unattributed' as client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        null::text as metric,
        'share' as measure,
        share as observed,
        {{ anomaly_threshold('unattributed_share_warn', "'unattributed'", metric=none) }} as expected,
        share / {{ anomaly_threshold('unattributed_share_warn', "'unattributed'", metric=none) }} as score,
        provider || ': ' || {{ anomaly_number('unattributed_cost') }} || ' USD of ' || {{ anomaly_number('total_cost') }}
            || ' USD on ' || usage_date::text || ' (' || {{ anomaly_percent('share') }} || ', '
            || unattributed_events::text || ' events) is attributed to no client (threshold '
            || {{ anomaly_percent(anomaly_threshold('unattributed_share_warn', "'unattributed'", metric=none)) }}
            || '); see attribution_status in fct_usage_events' as explanation,
        jsonb_build_object('unattributed_cost_usd', unattributed_cost, 'total_cost_usd', total_cost,
                           'unattributed_events', unattributed_events) as details
    from (
        select *, unattributed_cost / nullif(total_cost, 0) as share from unattributed
    ) as shares
    where unattributed_cost >= {{ anomaly_threshold('unattributed_min_cost_usd', "'unattributed'", metric=none) }}
      and share >= {{ anomaly_threshold('unattributed_share_warn', "'unattributed'", metric=none) }}

),

-- orphan_calls ------------------------------------------------------------------------------------------

calls_daily as (

    select
        (started_at at time zone 'UTC')::date as usage_date,
        count(*) filter (where link_status = 'matched') as matched,
        count(*) filter (where link_status = 'retell_leg_missing') as retell_leg_missing,
        count(*) filter (where link_status = 'twilio_without_retell_call') as twilio_without_retell_call
    from {{ ref('fct_calls') }}
    where started_at >= {{ evaluation_start }}::timestamp at time zone 'UTC'
      and started_at < {{ as_of_day }}::timestamp at time zone 'UTC'
    group by 1

),

orphans as (

    select usage_date, 'retell' as provider, 'retell_leg_missing' as link_status,
           'Retell phone call(s) without their Twilio leg' as what, retell_leg_missing as orphans,
           matched + retell_leg_missing + twilio_without_retell_call as phone_calls
    from calls_daily
    union all
    select usage_date, 'twilio', 'twilio_without_retell_call', 'Twilio leg(s) without a Retell call',
           twilio_without_retell_call, matched + retell_leg_missing + twilio_without_retell_call
    from calls_daily

),

orphan_findings as (

    select
        'orphan_calls' as kind,
        case when orphans::numeric / phone_calls >= {{ anomaly_threshold('orphan_share_error', none, metric=none) }}
             then 'error' else 'warn' end as severity,
        usage_date,
        null::text as client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        null::text as metric,
        'share' as measure,
        orphans::numeric / phone_calls as observed,
        {{ anomaly_threshold('orphan_share_warn', none, metric=none) }} as expected,
        orphans::numeric / phone_calls / {{ anomaly_threshold('orphan_share_warn', none, metric=none) }} as score,
        orphans::text || ' ' || what || ' on ' || usage_date::text || ', ' || {{ anomaly_percent('orphans::numeric / phone_calls') }}
            || ' of ' || phone_calls::text || ' phone calls (fct_calls.link_status = ' || link_status || ')' as explanation,
        jsonb_build_object('link_status', link_status, 'orphans', orphans, 'phone_calls', phone_calls) as details
    from orphans
    where phone_calls > 0
      and orphans >= {{ anomaly_threshold('orphan_min_calls', none, metric=none) }}
      and orphans::numeric / phone_calls >= {{ anomaly_threshold('orphan_share_warn', none, metric=none) }}

),

-- pending_expired ---------------------------------------------------------------------------------------

expired as (

    select
        usage_date,
        client_id,
        provider,
        count(*) as expired_events,
        count(distinct object_type || ':' || external_id) as expired_objects,
        min(occurred_at) as first_occurred_at
    from {{ ref('fct_usage_events') }}
    where usage_date >= {{ evaluation_start }} and usage_date < {{ as_of_day }}
      and cost_status = 'expired'
    group by usage_date, client_id, provider

),

expired_findings as (

    select
        'pending_expired' as kind,
        'error' as severity,
        usage_date,
        client_id,
        null::text as agent_id,
        provider,
        null::text as account,
        null::text as metric,
        'events' as measure,
        expired_events::numeric as observed,
        0::numeric as expected,
        null::numeric as score,
        client_id || ' at ' || provider || ': ' || expired_objects::text || ' object(s) of ' || usage_date::text
            || ' never got a price (' || expired_events::text || ' events with cost_status expired, '
            || {{ var('pending_max_age_days') }} || ' days after the usage): their cost is unknown and billed nowhere'
            as explanation,
        jsonb_build_object('expired_events', expired_events, 'expired_objects', expired_objects,
                           'pending_max_age_days', {{ var('pending_max_age_days') }}) as details
    from expired

),

-- coverage_gap -------------------------------------------------------------------------------------------

coverage_findings as (

    select
        'coverage_gap' as kind,
        status as severity,
        usage_date,
        client_id,
        null::text as agent_id,
        provider,
        account,
        category as metric,
        measure,
        ours as observed,
        theirs as expected,
        ratio as score,
        provider || ' ' || category || ' ' || measure || ' of ' || account
            || coalesce(' (' || client_id || ')', '') || ' on ' || usage_date::text || ': ours '
            || {{ anomaly_number('ours') }} || ' against the provider''s ' || {{ anomaly_number('theirs') }}
            || case when ratio is null then ' (the provider counts none)' else ' (' || {{ anomaly_percent('ratio') }} || ')' end
            || coalesce(', ' || reason, '') || ' (fct_coverage_daily)' as explanation,
        jsonb_build_object('coverage_id', coverage_id, 'ratio', ratio, 'reason', reason,
                           'provider_as_of', provider_as_of) as details
    from {{ ref('fct_coverage_daily') }}
    where usage_date >= {{ evaluation_start }} and usage_date < {{ as_of_day }}
      and status in ('warn', 'error')

),

findings as (

    {{ union_by_name(['change_findings', 'young_findings', 'missing_findings', 'unit_cost_findings',
                      'quarantine_findings', 'unattributed_findings', 'orphan_findings', 'expired_findings',
                      'coverage_findings'],
                     ['kind', 'severity', 'usage_date', 'client_id', 'agent_id', 'provider', 'account', 'metric',
                      'measure', 'observed', 'expected', 'score', 'explanation', 'details']) }}

),

keyed as (

    select
        {{ surrogate_key(['kind', 'usage_date', 'client_id', 'agent_id', 'provider', 'account', 'metric',
                          'measure']) }} as anomaly_id,
        *
    from findings

)

select
    keyed.anomaly_id,
    keyed.kind,
    keyed.severity,
    keyed.usage_date,
    keyed.client_id,
    keyed.agent_id,
    keyed.provider,
    keyed.account,
    keyed.metric,
    keyed.measure,
    keyed.observed::numeric as observed,
    keyed.expected::numeric as expected,
    keyed.score::numeric as score,
    keyed.explanation,
    keyed.details,
    {% if is_incremental() -%}
    least(previous.first_seen_at, {{ billing_as_of() }}) as first_seen_at,
    {%- else -%}
    {{ billing_as_of() }} as first_seen_at,
    {%- endif %}
    {{ billing_as_of() }} as last_seen_at
from keyed
{% if is_incremental() -%}
left join {{ this }} as previous on previous.anomaly_id = keyed.anomaly_id
{%- endif %}
