{# One row per Retell call, whether it came by polling, by webhook or both. The newest observation
   that carries a cost wins (cost is final only after call_analyzed); ties go to polling. #}
with polled as (

    select {{ retell_call_column_names() }}, workspace, observed_at, 'poll' as channel
    from {{ ref('stg_retell__calls') }}

),

delivered as (

    select {{ retell_call_column_names() }}, null::text as workspace, observed_at, 'webhook' as channel
    from {{ ref('stg_retell__webhook_events') }}

),

observations as (

    {{ union_by_name(['polled', 'delivered'],
                     retell_call_fields('call') | map(attribute=0) | list + ['workspace', 'observed_at', 'channel']) }}

),

{{ pick_observation('call_id', "combined_cost_usd is not null desc, observed_at desc, channel = 'poll' desc") }}
