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

computed as (

    select
        md5(concat_ws(':', cycle_id, coalesce(agent_id, ''), provider, metric)) as cycle_usage_id,
        *,
        {{ cycle_status('cycle_end', 'provider',
                        'sum(pending_events) over (partition by cycle_id, provider)') }} as cycle_status,
        {{ cycle_status_reason('cycle_end', 'provider',
                               'sum(pending_events) over (partition by cycle_id, provider)') }} as status_reason
    from totals

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
