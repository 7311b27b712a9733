{# Monthly billing cycles per client, starting at local midnight of the anchor day in the client's
   time zone; anchors 29-31 fall back to the last day of shorter months. A change of anchor day or
   time zone applies from the next boundary of the old settings: that cycle ends as planned, and the
   following one ends at the first boundary of the new settings (a transition cycle). #}
with settings as (

    select
        client_id,
        billing_timezone,
        billing_anchor_day,
        row_number() over (partition by client_id order by dbt_valid_from) as version,
        dbt_valid_from as changed_at
    from {{ ref('snap_directory__client_billing') }}

),

months as (

    select month_start::date as month_start
    from generate_series(
        date_trunc('month', {{ billing_as_of() }} at time zone 'UTC')
            - make_interval(months => {{ var('billing_cycle_months_back') }} + 1),
        date_trunc('month', {{ billing_as_of() }} at time zone 'UTC') + interval '2 months',
        interval '1 month'
    ) as month_start

),

boundaries as (

    select
        settings.client_id,
        settings.version,
        {{ cycle_boundary('months.month_start', 'settings.billing_anchor_day', 'settings.billing_timezone') }}
            as boundary
    from settings
    cross join months

),

effective as (

    {# Version 1 applies from the start; version k from the first boundary of version k-1 at or
       after the moment the change was seen. #}
    select
        settings.client_id,
        settings.version,
        case when settings.version = 1 then '-infinity'::timestamptz else (
            select min(previous.boundary) from boundaries as previous
            where previous.client_id = settings.client_id and previous.version = settings.version - 1
              and previous.boundary >= settings.changed_at
        ) end as effective_from
    from settings

),

windows as (

    select
        client_id,
        version,
        effective_from,
        lead(effective_from, 1, 'infinity'::timestamptz) over (partition by client_id order by version)
            as effective_to
    from effective
    where effective_from is not null

),

starts as (

    select windows.client_id, windows.version, boundaries.boundary as cycle_start
    from windows
    inner join boundaries
        on boundaries.client_id = windows.client_id
        and boundaries.version = windows.version
        and boundaries.boundary > windows.effective_from
        and boundaries.boundary < windows.effective_to

    union

    select client_id, version, effective_from as cycle_start
    from windows
    where version > 1

),

cycles as (

    select
        client_id,
        version,
        cycle_start,
        lead(cycle_start) over (partition by client_id order by cycle_start) as cycle_end
    from starts

)

select
    md5(cycles.client_id || ':' || cycles.cycle_start::text) as cycle_id,
    cycles.client_id,
    cycles.cycle_start,
    cycles.cycle_end,
    settings.billing_timezone,
    settings.billing_anchor_day,
    (cycles.cycle_start at time zone settings.billing_timezone)::date as local_start_date,
    (cycles.cycle_end at time zone settings.billing_timezone)::date as local_end_date

from cycles
inner join settings on settings.client_id = cycles.client_id and settings.version = cycles.version
where cycles.cycle_end is not null
