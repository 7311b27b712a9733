{# Billing cycle x client x provider x metric, summed exactly from events (cycle_usage_totals). Closed rows
   are frozen: the rows of a cycle and provider are recomputed until they are stored as closed; from then
   on they are never selected again, and full_refresh=false keeps `--full-refresh` from rebuilding them.
   Later changes to their events go to fct_cycle_adjustments. A build recomputes the cycles not closed yet
   and those whose events changed since the last one (cycle_usage, usage_event_changes), never the whole
   history. #}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='cycle_usage_id',
    on_schema_change='append_new_columns',
    full_refresh=false,
    pre_hook="{{ pin_rollup_watermark(built_from=cycle_day_rollup()) }}",
    post_hook="{{ advance_rollup_watermark() }}",
) }}

{{ cycle_usage() }}
