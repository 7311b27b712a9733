{# The UTC days a day rollup must rebuild, as a condition on usage_date: the days of the client-days
   fct_usage_events logged in ops.usage_event_changes since the rollup's last build (events rewritten,
   moved or removed), and a backfill's days [start, end). `true` on a first build and after
   fct_usage_events recomputed everything. The days reach the query as one array computed when it runs,
   so the usage_date index serves (a disjunction of subqueries would scan fct_usage_events). #}
{% macro usage_days_to_rebuild() %}
    {%- if rebuilds_all_changes() -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set days = ["select usage_date from ops.usage_event_changes as changes where " ~ changes_since_last_build()] -%}
    {%- if var('backfill_start', none) -%}
        {%- do days.append("select generate_series('" ~ var('backfill_start') ~ "'::date, '" ~ var('backfill_end')
                           ~ "'::date - 1, interval '1 day')::date") -%}
    {%- endif -%}
    {{ return('usage_date = any(array(' ~ days | join(' union ') ~ '))') }}
{% endmacro %}

{# How far the events a day rollup was built from reach (what it tells BI; the log decides what is rebuilt). #}
{% macro usage_observed_through() -%}
    (select max(last_observed_at) from {{ ref('fct_usage_events') }})
{%- endmacro %}

{# Pre-hooks of a day rollup: pin the changes it reads, then clear the days about to be rebuilt (a day may
   now have no rows). `built_from` names the rollup it sums, whose processed changes bound its own. #}
{% macro clear_usage_days(built_from=none) %}
    {{ pin_rollup_watermark(built_from) }};
    {% if is_incremental() -%}
    delete from {{ this }} where {{ usage_days_to_rebuild() }}
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
