{# Each anomaly series (anomaly_series_daily) on each evaluated day: its values and the robust baseline
   of every measure (median, MAD, mean absolute deviation, modified z-score), computed in two passes:
   the first over every day, the second leaving out of each baseline the days the first pass flagged as
   an ERROR spike or drop of the series, so a past incident does not distort what is normal. Leaving
   out only first-pass errors, not errors of the second pass itself, keeps this bounded: after a lasting
   change of level the baseline catches up (the first pass stops flagging once most points are new). #}
{{ config(materialized='table', indexes=[{'columns': ['series_id', 'usage_date']}]) }}

with series as (

    select * from {{ ref('anomaly_series_daily') }}

),

{{ robust_baseline('first_pass', 'series', anomaly_evaluation_start() ~ ' - ' ~ anomaly_setting('baseline_days')) }},

first_pass_errors as (

    select series_id, usage_date
    from first_pass
    where enough_history
      and 'error' in ({{ cost_change_severity() }}, {{ quantity_change_severity() }})

),

{{ robust_baseline('second_pass', 'series', anomaly_evaluation_start(), 'first_pass_errors') }}

select
    second_pass.*,
    exists (select 1 from first_pass_errors as flagged
            where flagged.series_id = second_pass.series_id and flagged.usage_date = second_pass.usage_date)
        as first_pass_error
from second_pass
