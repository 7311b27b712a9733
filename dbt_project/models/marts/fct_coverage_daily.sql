{# Coverage against independent provider totals (docs/checks-and-anomalies.md#coverage): one row per
   provider x account x client x UTC day x comparable category x measure, with our figure, the provider's,
   their ratio, a status and the reason. Thresholds: var('coverage_thresholds'), read through
   coverage_threshold(); the rules are the macros of macros/coverage.sql.

   Incremental: each build recomputes the last evaluation_days (and a backfill's days), after clearing
   them; older rows stay as last computed, so a gap nobody repaired stays visible (and keeps blocking its
   cycle). A coverage ERROR keeps the client's cycle settling (cycle_coverage_errors). #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook="{{ clear_coverage_days() }}",
    indexes=[{'columns': ['usage_date']}, {'columns': ['client_id', 'provider', 'usage_date']}],
) }}

with comparisons as (

    select * from {{ ref('coverage_comparisons') }}

)

select
    {{ surrogate_key(['provider', 'account', 'client_id', 'usage_date', 'category', 'measure']) }}::text as coverage_id,
    provider::text as provider,
    account::text as account,
    client_id::text as client_id,
    usage_date::date as usage_date,
    category::text as category,
    measure::text as measure,
    ours::numeric as ours,
    theirs::numeric as theirs,
    {{ coverage_ratio('ours', 'theirs') }}::numeric as ratio,
    {{ coverage_status() }}::text as status,
    {{ coverage_reason() }}::text as reason,
    provider_as_of::timestamptz as provider_as_of,
    {{ billing_as_of() }} as computed_at
from comparisons
