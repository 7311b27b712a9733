{# Billing cycle x client x agent x provider x metric (agent_id null for client-level resources),
   summed from events and frozen at close exactly like fct_cycle_usage: the rows of a cycle and provider
   are recomputed until they are stored as closed, then never again, not even by `--full-refresh`. #}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='cycle_usage_id',
    on_schema_change='append_new_columns',
    full_refresh=false,
) }}

with cycles as (

    select * from {{ ref('dim_billing_cycles') }}
    where cycle_start < {{ billing_as_of() }}

),

totals as (

    {{ cycle_usage_totals('cycles', grain=['agent_id']) }}

),

coverage_errors as (

    {{ cycle_coverage_errors('cycles') }}

),

computed as (

    select
        md5(concat_ws(':', totals.cycle_id, coalesce(totals.agent_id, ''), totals.provider, totals.metric)) as cycle_usage_id,
        totals.*,
        {{ cycle_status('totals.cycle_end', 'totals.provider',
                        'sum(totals.pending_events) over (partition by totals.cycle_id, totals.provider)',
                        'coalesce(coverage_errors.error_days, 0)') }} as cycle_status,
        {{ cycle_status_reason('totals.cycle_end', 'totals.provider',
                               'sum(totals.pending_events) over (partition by totals.cycle_id, totals.provider)',
                               'coalesce(coverage_errors.error_days, 0)', 'coverage_errors.first_error_day') }}
            as status_reason
    from totals
    left join coverage_errors
        on coverage_errors.cycle_id = totals.cycle_id and coverage_errors.provider = totals.provider

)

select
    computed.*,
    case when cycle_status = 'closed' then {{ billing_as_of() }} end as closed_at,
    {{ billing_as_of() }} as computed_at,
    now() as stored_at  -- wall clock: events changed after this are adjustments

from computed
{% if is_incremental() -%}
where not exists (
    select 1 from {{ this }} as stored
    where stored.cycle_id = computed.cycle_id and stored.provider = computed.provider
      and stored.cycle_status = 'closed'
)
{%- endif %}
