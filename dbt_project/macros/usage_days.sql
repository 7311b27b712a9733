{# The UTC days fct_daily_usage must rebuild, as a condition on usage_date: days with events observed
   since its last build, days that lost events since then, and a backfill's days [start, end).
   `true` on a first build. The days reach the query as one array computed when it runs, so the
   usage_date index serves (a disjunction of subqueries would scan fct_usage_events). #}
{% macro usage_days_to_rebuild() %}
    {%- if not execute or not is_incremental() or not has_column(this, 'observed_through') -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set since = run_query("select coalesce(max(observed_through)::text, '-infinity') from " ~ this)
                      .columns[0].values()[0] -%}
    {%- set days = [
        "select usage_date from " ~ ref('fct_usage_events') ~ " where last_observed_at > '" ~ since
            ~ "'::timestamptz",
        "select usage_date from ops.usage_event_removals where removed_at > '" ~ since ~ "'::timestamptz",
    ] -%}
    {%- if var('backfill_start', none) -%}
        {%- do days.append("select generate_series('" ~ var('backfill_start') ~ "'::date, '" ~ var('backfill_end')
                           ~ "'::date - 1, interval '1 day')::date") -%}
    {%- endif -%}
    {{ return('usage_date = any(array(' ~ days | join(' union ') ~ '))') }}
{% endmacro %}

{# How far the events a day rollup was built from reach: the next build rebuilds the days observed since. #}
{% macro usage_observed_through() -%}
    (select max(last_observed_at) from {{ ref('fct_usage_events') }})
{%- endmacro %}

{# Pre-hook of fct_daily_usage: clear the days about to be rebuilt (a day may now have no rows). #}
{% macro clear_usage_days() %}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ usage_days_to_rebuild() }}
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
