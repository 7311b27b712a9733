{# Billing cycle x client x agent x provider x metric (agent_id null for client-level resources),
   summed exactly from events (cycle_usage_totals) and frozen at close like fct_cycle_usage: the rows of a
   cycle and provider are recomputed until they are stored as closed, then never again, not even by
   `--full-refresh`. #}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='cycle_usage_id',
    on_schema_change='append_new_columns',
    full_refresh=false,
    pre_hook="{{ pin_rollup_watermark(built_from=cycle_day_rollup(['agent_id'])) }}",
    post_hook="{{ advance_rollup_watermark() }}",
) }}

{{ cycle_usage(grain=['agent_id']) }}
