{# Robust baselines for the anomaly rules (docs/checks-and-anomalies.md): median and MAD of a series
   over the trailing baseline_days, never the day under test, on same-weekday points when there are
   enough of them. #}

{# The build's day: completed UTC days are the ones before it. #}
{% macro anomaly_as_of_day() -%}
    (({{ billing_as_of() }}) at time zone 'UTC')::date
{%- endmacro %}

{# First day whose findings a build computes (evaluation_days back). #}
{% macro anomaly_evaluation_start() -%}
    ({{ anomaly_as_of_day() }} - {{ anomaly_setting('evaluation_days') }})
{%- endmacro %}

{# First day read: the evaluation days' baselines, and the baselines of those baselines' days (the first
   pass that finds the ERROR days to leave out). #}
{% macro anomaly_read_start() -%}
    ({{ anomaly_as_of_day() }} - {{ anomaly_setting('evaluation_days') + 2 * anomaly_setting('baseline_days') }})
{%- endmacro %}

{% macro anomaly_measures() -%}
    {{ return(['cost_usd', 'quantity', 'events', 'ratio']) }}
{%- endmacro %}

{# Modified z-score of `value` against a median and MAD: 0.6745 (x - median) / MAD. With MAD = 0 (more
   than half the points equal), the mean absolute deviation stands in: (x - median) / (1.253314 MeanAD);
   null when every point equals the median (no spread to measure against). #}
{% macro modified_z(value, median, mad, meanad) -%}
    (case
        when {{ mad }} > 0 then 0.6745 * ({{ value }} - {{ median }}) / {{ mad }}
        when {{ meanad }} > 0 then ({{ value }} - {{ median }}) / (1.253314 * {{ meanad }})
    end)
{%- endmacro %}

{# Severity of a change from the baseline median, or null when it is not material: it must pass both
   floors (absolute, and relative to the median unless the median is 0), then |z| >= z_warn gives warn
   and |z| >= z_error error; a baseline without spread (z null) gives warn. #}
{% macro anomaly_change_severity(observed, median, z, abs_floor, client_id='client_id', provider='provider',
                                 metric='metric') -%}
    (case
        when {{ observed }} is null or {{ median }} is null or {{ observed }} = {{ median }} then null
        when abs({{ observed }} - {{ median }}) < {{ abs_floor }} then null
        when {{ median }} <> 0 and abs({{ observed }} - {{ median }})
             < {{ anomaly_threshold('min_relative_change', client_id, provider, metric) }} * abs({{ median }}) then null
        when {{ z }} is null then 'warn'
        when abs({{ z }}) >= {{ anomaly_threshold('z_error', client_id, provider, metric) }} then 'error'
        when abs({{ z }}) >= {{ anomaly_threshold('z_warn', client_id, provider, metric) }} then 'warn'
    end)
{%- endmacro %}

{# The spike/drop severity of each measure a level is tested on: cost for client x provider x metric and
   provider totals, quantity for client x provider x metric and provider x metric. #}
{% macro cost_change_severity(row='') -%}
    (case when {{ row }}level in ('client_metric', 'provider') then
        {{ anomaly_change_severity(row ~ 'cost_usd', row ~ 'cost_usd_median', row ~ 'cost_usd_z',
                                   anomaly_threshold('min_abs_cost_usd', row ~ 'client_id', row ~ 'provider', row ~ 'metric'),
                                   row ~ 'client_id', row ~ 'provider', row ~ 'metric') }}
    end)
{%- endmacro %}

{% macro quantity_change_severity(row='') -%}
    (case when {{ row }}level in ('client_metric', 'provider_metric') then
        {{ anomaly_change_severity(row ~ 'quantity', row ~ 'quantity_median', row ~ 'quantity_z',
                                   anomaly_threshold('min_abs_quantity', row ~ 'client_id', row ~ 'provider', row ~ 'metric'),
                                   row ~ 'client_id', row ~ 'provider', row ~ 'metric') }}
    end)
{%- endmacro %}

{# CTEs `<name>_pairs` .. `<name>`: for every row of `series` (series_id, usage_date, the measures) from
   `targets_from` on, the baseline of each measure over the series' points in the baseline_days before
   it, minus the (series_id, usage_date) rows of `exclude`. Same-weekday points are used when there are
   min_same_weekday_points of them, else all points; `enough_history` is false below
   min_baseline_points (insufficient_history). Ends without a trailing comma. #}
{% macro robust_baseline(name, series, targets_from, exclude=none) -%}
    {%- set measures = anomaly_measures() -%}
    {%- set min_same = anomaly_setting('min_same_weekday_points') -%}
{{ name }}_pairs as (

    select
        target.series_id,
        target.usage_date,
        extract(isodow from point.usage_date) = extract(isodow from target.usage_date) as same_weekday,
        {%- for measure in measures %}
        point.{{ measure }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ series }} as target
    inner join {{ series }} as point
        on point.series_id = target.series_id
        and point.usage_date >= target.usage_date - {{ anomaly_setting('baseline_days') }}
        and point.usage_date < target.usage_date
    {%- if exclude %}
    left join {{ exclude }} as excluded
        on excluded.series_id = point.series_id and excluded.usage_date = point.usage_date
    {%- endif %}
    where target.usage_date >= {{ targets_from }}
    {%- if exclude %}
      and excluded.series_id is null
    {%- endif %}

),

{{ name }}_selected as (

    select * from (
        select
            *,
            count(*) filter (where same_weekday) over (partition by series_id, usage_date) as points_same_weekday,
            count(*) over (partition by series_id, usage_date) as points_all
        from {{ name }}_pairs
    ) as counted
    where same_weekday or points_same_weekday < {{ min_same }}

),

{{ name }}_medians as (

    select
        series_id,
        usage_date,
        max(points_all) as points_all,
        max(points_same_weekday) as points_same_weekday,
        count(*) as points,
        {%- for measure in measures %}
        (percentile_cont(0.5) within group (order by {{ measure }}))::numeric as {{ measure }}_median
        {{- ',' if not loop.last }}
        {%- endfor %}
    from {{ name }}_selected
    group by series_id, usage_date

),

{{ name }}_spread as (

    select
        selected.series_id,
        selected.usage_date,
        {%- for measure in measures %}
        (percentile_cont(0.5) within group (
            order by abs(selected.{{ measure }} - medians.{{ measure }}_median)))::numeric as {{ measure }}_mad,
        trim_scale(round(avg(abs(selected.{{ measure }} - medians.{{ measure }}_median)), 12)) as {{ measure }}_meanad
        {{- ',' if not loop.last }}
        {%- endfor %}
    from {{ name }}_selected as selected
    inner join {{ name }}_medians as medians
        on medians.series_id = selected.series_id and medians.usage_date = selected.usage_date
    group by selected.series_id, selected.usage_date

),

{{ name }} as (

    select
        target.*,
        coalesce(medians.points_all, 0) as points_all,
        coalesce(medians.points_same_weekday, 0) as points_same_weekday,
        coalesce(medians.points, 0) as points,
        coalesce(medians.points_same_weekday, 0) >= {{ min_same }} as same_weekday,
        coalesce(medians.points_same_weekday, 0) >= {{ min_same }}
            or coalesce(medians.points_all, 0) >= {{ anomaly_setting('min_baseline_points') }} as enough_history,
        {%- for measure in measures %}
        medians.{{ measure }}_median,
        spread.{{ measure }}_mad,
        spread.{{ measure }}_meanad,
        trim_scale(round({{ modified_z('target.' ~ measure, 'medians.' ~ measure ~ '_median',
                                       'spread.' ~ measure ~ '_mad', 'spread.' ~ measure ~ '_meanad') }}, 4))
            as {{ measure }}_z
        {{- ',' if not loop.last }}
        {%- endfor %}
    from {{ series }} as target
    left join {{ name }}_medians as medians
        on medians.series_id = target.series_id and medians.usage_date = target.usage_date
    left join {{ name }}_spread as spread
        on spread.series_id = target.series_id and spread.usage_date = target.usage_date
    where target.usage_date >= {{ targets_from }}

)
{%- endmacro %}
