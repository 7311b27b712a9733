{# The moment cycle statuses are computed for: var('as_of') in tests and backfills, else the run start. #}
{% macro billing_as_of() -%}
    '{{ var("as_of", run_started_at.isoformat()) }}'::timestamptz
{%- endmacro %}

{# The cycle start of a month: local midnight of the anchor day (or the month's last day, when shorter). #}
{% macro cycle_boundary(month_start, anchor_day, timezone) -%}
    make_timestamptz(
        extract(year from {{ month_start }})::int,
        extract(month from {{ month_start }})::int,
        least({{ anchor_day }}, extract(day from ({{ month_start }} + interval '1 month - 1 day'))::int),
        0, 0, 0, {{ timezone }})
{%- endmacro %}

{# open until the cycle ends; settling during the provider's grace period, for as long as any of the
   provider's events in it is pending, and while a day of it has a coverage ERROR about the client
   (fct_coverage_daily: what bills must not miss what the provider counted); closed after.
   `pending_events`, `coverage_error_days`: expressions counting them. #}
{% macro cycle_status(cycle_end, provider, pending_events='0', coverage_error_days='0') -%}
    case
        when {{ billing_as_of() }} < {{ cycle_end }} then 'open'
        when {{ billing_as_of() }} < {{ settled_after(cycle_end, provider) }} or {{ pending_events }} > 0
             or {{ coverage_error_days }} > 0
            then 'settling'
        else 'closed'
    end
{%- endmacro %}

{# Why a cycle is not closed yet, in a few words; null once closed. #}
{% macro cycle_status_reason(cycle_end, provider, pending_events='0', coverage_error_days='0',
                             first_coverage_error_day='null') -%}
    case
        when {{ billing_as_of() }} < {{ cycle_end }} then 'the cycle has not ended'
        when {{ billing_as_of() }} < {{ settled_after(cycle_end, provider) }}
            then 'grace period for late prices until ' || to_char({{ settled_after(cycle_end, provider) }} at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
        when {{ pending_events }} > 0 or {{ coverage_error_days }} > 0 then concat_ws('; ',
            case when {{ pending_events }} > 0 then ({{ pending_events }})::text || ' event(s) still pending a price' end,
            case when {{ coverage_error_days }} > 0
                 then 'coverage gap: ' || ({{ coverage_error_days }})::text || ' day(s) with a coverage ERROR from '
                      || ({{ first_coverage_error_day }})::text || ' (fct_coverage_daily)' end)
    end
{%- endmacro %}

{% macro settled_after(cycle_end, provider) -%}
    {%- set grace = var('settling_grace_hours') -%}
    ({{ cycle_end }} + make_interval(hours => case {{ provider }}
        {%- for name, hours in grace.items() %} when '{{ name }}' then {{ hours }}{% endfor %} else 72 end))
{%- endmacro %}
