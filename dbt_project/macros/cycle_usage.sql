{# Usage per billing cycle, summed from events (not daily rows) so cycle edges are exact.
   `grain`: extra columns beside cycle, client, provider, metric (e.g. ['agent_id']).
   `cycles`: the relation or CTE of cycles to compute. #}
{% macro cycle_usage_totals(cycles, grain=[]) -%}
    select
        cycles.cycle_id,
        cycles.client_id,
        cycles.cycle_start,
        cycles.cycle_end,
        {% for column in grain %}events.{{ column }},{% endfor %}
        events.provider,
        events.metric,
        events.unit,
        sum(events.quantity) as quantity,
        sum(events.cost_usd) as cost_usd,
        count(*) as event_count
    from {{ cycles }} as cycles
    inner join {{ ref('fct_usage_events') }} as events
        on events.client_id = cycles.client_id
        and events.occurred_at >= cycles.cycle_start
        and events.occurred_at < cycles.cycle_end
    group by cycles.cycle_id, cycles.client_id, cycles.cycle_start, cycles.cycle_end,
        {% for column in grain %}events.{{ column }},{% endfor %} events.provider, events.metric, events.unit
{%- endmacro %}

{# The frozen cycle aggregate: rows of a cycle and provider are recomputed until they are stored as
   closed; from then on they are never selected again, and `--full-refresh` does not rebuild them. #}
{% macro frozen_cycle_usage(grain=[]) -%}
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

    {{ cycle_usage_totals('cycles', grain) }}

),

computed as (

    select
        md5(concat_ws(':', cycle_id, {% for column in grain %}coalesce({{ column }}, ''), {% endfor %}provider, metric))
            as cycle_usage_id,
        *,
        {{ cycle_status('cycle_end', 'provider') }} as cycle_status
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
{%- endmacro %}
