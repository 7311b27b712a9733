{# The statement of each client's billing cycle, one line per provider x metric: the cycle's usage (as
   fct_cycle_usage holds it, frozen once closed), the adjustments that bill into this cycle, pending
   prices, the cycle's status and the providers' coverage over its days. A line exists when the cycle has
   usage or receives an adjustment for that provider x metric. #}
{{ config(indexes=[{'columns': ['cycle_id']}, {'columns': ['client_id', 'cycle_start']}]) }}

with usage as (

    select * from {{ ref('fct_cycle_usage') }}

),

adjustments as (

    select
        bills_into_cycle_id as cycle_id,
        client_id,
        provider,
        metric,
        count(*) as adjustment_count,
        sum(delta_quantity) as adjustment_quantity,
        sum(delta_cost_usd) as adjustment_cost_usd,
        array_agg(adjustment_id order by booked_at, adjustment_id) as adjustment_ids,
        array_agg(distinct cycle_id) as adjusted_cycle_ids
    from {{ ref('fct_cycle_adjustments') }}
    where bills_into_cycle_id is not null
    group by bills_into_cycle_id, client_id, provider, metric

),

lines as (

    select
        coalesce(usage.cycle_id, adjustments.cycle_id) as cycle_id,
        coalesce(usage.client_id, adjustments.client_id) as client_id,
        usage.cycle_start,
        usage.cycle_end,
        coalesce(usage.provider, adjustments.provider) as provider,
        coalesce(usage.metric, adjustments.metric) as metric,
        usage.unit,
        coalesce(usage.quantity, 0) as quantity,
        coalesce(usage.cost_usd, 0) as cost_usd,
        coalesce(usage.event_count, 0) as event_count,
        coalesce(usage.pending_events, 0) as pending_events,
        coalesce(usage.expired_events, 0) as expired_events,
        coalesce(adjustments.adjustment_count, 0) as adjustment_count,
        coalesce(adjustments.adjustment_quantity, 0) as adjustment_quantity,
        coalesce(adjustments.adjustment_cost_usd, 0) as adjustment_cost_usd,
        coalesce(adjustments.adjustment_ids, array[]::text[]) as adjustment_ids,
        coalesce(adjustments.adjusted_cycle_ids, array[]::text[]) as adjusted_cycle_ids,
        usage.cycle_status,
        usage.status_reason,
        usage.closed_at
    from usage
    full outer join adjustments
        on adjustments.cycle_id = usage.cycle_id
        and adjustments.provider = usage.provider
        and adjustments.metric = usage.metric

),

metric_units as (

    select distinct provider, metric, unit from {{ ref('fct_cycle_usage') }}

),

provider_status as (

    {# a line with adjustments only takes the status of the provider's usage lines in the cycle #}
    select distinct on (cycle_id, provider) cycle_id, provider, cycle_status, status_reason, closed_at
    from usage
    order by cycle_id, provider, cycle_status

),

stated_cycles as (

    select * from {{ ref('dim_billing_cycles') }}
    where cycle_id in (select cycle_id from lines)

),

coverage_days as (

    {# on the UTC days that overlap the cycle: the client's own coverage rows ... #}
    select cycles.cycle_id, coverage.provider, coverage.status, coverage.usage_date, coverage.category,
           coverage.measure, coverage.reason
    from stated_cycles as cycles
    inner join {{ ref('fct_coverage_daily') }} as coverage
        on coverage.client_id = cycles.client_id
        and (coverage.usage_date::timestamp at time zone 'UTC') < cycles.cycle_end
        and ((coverage.usage_date + 1)::timestamp at time zone 'UTC') > cycles.cycle_start

    union all

    {# ... and those of accounts shared by several clients #}
    select cycles.cycle_id, coverage.provider, coverage.status, coverage.usage_date, coverage.category,
           coverage.measure, coverage.reason
    from stated_cycles as cycles
    inner join {{ ref('fct_coverage_daily') }} as coverage
        on coverage.client_id is null
        and (coverage.usage_date::timestamp at time zone 'UTC') < cycles.cycle_end
        and ((coverage.usage_date + 1)::timestamp at time zone 'UTC') > cycles.cycle_start

),

coverage_ranked as (

    select
        cycle_id,
        provider,
        status,
        usage_date::text || ' ' || category || '/' || measure || coalesce(': ' || reason, '') as detail,
        case status when 'error' then 4 when 'warn' then 3 when 'not_yet_comparable' then 2 else 1 end as severity,
        usage_date
    from coverage_days

),

coverage as (

    select distinct on (cycle_id, provider)
        cycle_id,
        provider,
        status as coverage_status,
        case when status <> 'ok' then detail end as coverage_reason
    from coverage_ranked
    order by cycle_id, provider, severity desc, usage_date, detail

),

refreshed as (

    {# a provider's data is complete up to its oldest successful collection among its accounts #}
    select source as provider, min(last_success_at) as data_refreshed_at
    from {{ source('ops', 'collector_state') }}
    group by source

)

select
    md5(concat_ws(':', lines.cycle_id, lines.provider, lines.metric)) as statement_line_id,
    lines.cycle_id,
    lines.client_id,
    clients.client_name,
    coalesce(lines.cycle_start, cycles.cycle_start) as cycle_start,
    coalesce(lines.cycle_end, cycles.cycle_end) as cycle_end,
    cycles.billing_timezone,
    cycles.local_start_date,
    cycles.local_end_date,
    lines.provider,
    lines.metric,
    coalesce(lines.unit, metric_units.unit) as unit,
    lines.quantity,
    lines.cost_usd,
    lines.event_count,
    lines.pending_events,
    lines.expired_events,
    lines.adjustment_count,
    lines.adjustment_quantity,
    lines.adjustment_cost_usd,
    lines.adjustment_ids,
    lines.adjusted_cycle_ids,
    lines.cost_usd + lines.adjustment_cost_usd as total_cost_usd,
    coalesce(lines.cycle_status, provider_status.cycle_status,
             {{ cycle_status('coalesce(lines.cycle_end, cycles.cycle_end)', 'lines.provider') }}) as cycle_status,
    case when lines.cycle_status is not null then lines.status_reason
         when provider_status.cycle_status is not null then provider_status.status_reason
         else {{ cycle_status_reason('coalesce(lines.cycle_end, cycles.cycle_end)', 'lines.provider') }}
    end as status_reason,
    coalesce(lines.closed_at, provider_status.closed_at) as closed_at,
    coalesce(coverage.coverage_status, 'not_measured') as coverage_status,
    coverage.coverage_reason,
    refreshed.data_refreshed_at,
    {{ billing_as_of() }} as computed_at

from lines
left join {{ ref('dim_billing_cycles') }} as cycles on cycles.cycle_id = lines.cycle_id  -- cycles older than it keep their usage rows
left join {{ ref('dim_clients') }} as clients on clients.client_id = lines.client_id and clients.is_current
left join metric_units on metric_units.provider = lines.provider and metric_units.metric = lines.metric
left join provider_status on provider_status.cycle_id = lines.cycle_id and provider_status.provider = lines.provider
left join coverage on coverage.cycle_id = lines.cycle_id and coverage.provider = lines.provider
left join refreshed on refreshed.provider = lines.provider
