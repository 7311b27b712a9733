{# Coverage against independent provider totals (fct_coverage_daily, docs/checks-and-anomalies.md#coverage):
   thresholds, the days a build recomputes, how a comparison is scored, and what a coverage ERROR blocks. #}

{# A threshold of var('coverage_thresholds'), as a Python value; an unknown name fails the build. #}
{% macro coverage_threshold(name) -%}
    {%- set thresholds = var('coverage_thresholds') -%}
    {%- if name not in thresholds -%}
        {{ exceptions.raise_compiler_error("unknown coverage threshold '" ~ name ~ "' (see coverage_thresholds in dbt_project.yml)") }}
    {%- endif -%}
    {{ return(thresholds[name]) }}
{%- endmacro %}

{# The days a build (re)computes, as a condition on a column: the last evaluation_days before the build's day
   and the build's day itself, and a backfill's days [start, end). kind: 'date'; 'iso_text', a day as
   'YYYY-MM-DD' text (which sorts as the day), compared as text so an index on it serves; 'timestamp', a
   timestamptz, compared with the UTC midnights that bound the days, likewise. #}
{% macro coverage_days(column, kind='date') -%}
    ({{ column }} >= {{ _day_bound(anomaly_as_of_day() ~ ' - ' ~ coverage_threshold('evaluation_days'), kind) }}
    {%- if var('backfill_start', none) %}
     or ({{ column }} >= {{ _day_bound("'" ~ var('backfill_start') ~ "'::date", kind) }}
         and {{ column }} < {{ _day_bound("'" ~ var('backfill_end') ~ "'::date", kind) }})
    {%- endif %})
{%- endmacro %}

{% macro _day_bound(day, kind) -%}
    {%- if kind == 'iso_text' -%}
    to_char({{ day }}, 'YYYY-MM-DD')
    {%- elif kind == 'timestamp' -%}
    ({{ day }})::timestamp at time zone 'UTC'
    {%- else -%}
    {{ day }}
    {%- endif -%}
{%- endmacro %}

{# Pre-hook of fct_coverage_daily: clear the days about to be recomputed (a comparison may be gone). #}
{% macro clear_coverage_days() %}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ coverage_days('usage_date') }}
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}

{# The midnight (UTC) that ends a day. #}
{% macro coverage_day_end(day) -%}
    (({{ day }}) + 1)::timestamp at time zone 'UTC'
{%- endmacro %}

{# ours / theirs; 1 when both are 0 (nothing was due, nothing is missing), null when only theirs is 0. #}
{% macro coverage_ratio(ours, theirs) -%}
    (case
        when {{ theirs }} is null or {{ ours }} is null then null
        when {{ theirs }} = 0 and {{ ours }} = 0 then 1::numeric
        when {{ theirs }} = 0 then null
        else trim_scale(round({{ ours }}::numeric / {{ theirs }}, 6))
    end)
{%- endmacro %}

{# A known structural difference that explains the whole gap (the row is ok with this reason): calls in
   a status Twilio may not count (busy, failed, no-answer, canceled), or a cost off by rounding only. #}
{% macro coverage_explained(row='') -%}
    (case
        when {{ row }}measure = 'count' and {{ row }}unbilled_objects > 0
             and {{ row }}ours - {{ row }}unbilled_objects = {{ row }}theirs then 'unbilled_status'
        when {{ row }}measure = 'cost_usd' and {{ row }}theirs is not null
             and abs({{ row }}ours - {{ row }}theirs)
                 <= {{ coverage_threshold('rounding_usd_per_object') }} * greatest({{ row }}ours_objects, 1) then 'rounding'
    end)
{%- endmacro %}

{# ok, warn, error or not_yet_comparable, from a comparison row (coverage_comparisons). #}
{% macro coverage_status(row='') -%}
    {%- set ratio = coverage_ratio(row ~ 'ours', row ~ 'theirs') -%}
    (case
        when not {{ row }}settled then 'not_yet_comparable'
        when {{ row }}ours = {{ row }}theirs then 'ok'
        when {{ coverage_explained(row) }} is not null then 'ok'
        when {{ row }}theirs = 0 then 'error'
        when {{ ratio }} > {{ coverage_threshold('error_above') }} then 'error'
        -- a price the provider never gave us (pending_expired reports it): a warning, not a second block
        when {{ ratio }} < 1 and {{ row }}measure = 'cost_usd' and {{ row }}expired_events > 0 then 'warn'
        when {{ ratio }} < {{ coverage_threshold('error_below') }} then 'error'
        when {{ ratio }} < {{ coverage_threshold('warn_below') }} then 'warn'
        else 'ok'
    end)
{%- endmacro %}

{# Reason codes, comma-separated; null for an ok row with nothing to explain. #}
{% macro coverage_reason(row='') -%}
    {%- set ratio = coverage_ratio(row ~ 'ours', row ~ 'theirs') -%}
    nullif(concat_ws(',',
        case when not {{ row }}settled then {{ row }}unsettled_reason end,
        case when {{ row }}settled and {{ row }}ours <> {{ row }}theirs then coalesce(
            {{ coverage_explained(row) }},
            case
                when {{ row }}theirs = 0 or {{ ratio }} > {{ coverage_threshold('error_above') }} then 'excess'
                when {{ ratio }} < 1 and {{ row }}measure = 'cost_usd' and {{ row }}expired_events > 0
                    then 'expired_prices'
                when {{ ratio }} >= {{ coverage_threshold('warn_below') }} then null
                when {{ row }}quarantined_objects > 0 then 'quarantined'
                else 'missing'
            end)
        end,
        {{ row }}structural_reason
    ), '')
{%- endmacro %}

{# Per cycle (a relation or CTE with cycle_id, client_id, cycle_start, cycle_end) and provider: the UTC days
   overlapping the cycle with a coverage ERROR about the client, and the first of them. A row about an
   account shared by several clients (client_id null) counts for every client that used the provider
   that day: whose usage is missing is not known. #}
{% macro cycle_coverage_errors(cycles) -%}
    select
        cycles.cycle_id,
        coverage.provider,
        count(distinct coverage.usage_date) as error_days,
        min(coverage.usage_date) as first_error_day
    from {{ cycles }} as cycles
    inner join {{ ref('fct_coverage_daily') }} as coverage
        on coverage.status = 'error'
        and coverage.usage_date::timestamp at time zone 'UTC' < cycles.cycle_end
        and {{ coverage_day_end('coverage.usage_date') }} > cycles.cycle_start
        and (coverage.client_id = cycles.client_id
             or (coverage.client_id is null and exists (
                    select 1 from {{ ref('fct_usage_events') }} as used
                    where used.client_id = cycles.client_id and used.provider = coverage.provider
                      and used.usage_date = coverage.usage_date)))
    group by cycles.cycle_id, coverage.provider
{%- endmacro %}
