{# Given a CTE `observations` (one row per sighting of an object, with `channel` in poll/webhook and
   `observed_at`), keep the best sighting per `key` by `order_by`, with the provenance of all
   sightings. One pass of window functions partitioned by the key, so a filter on the key reaches the
   raw tables' indexes. #}
{% macro pick_observation(key, order_by) %}
ranked as (

    select
        *,
        row_number() over (partition by {{ key }} order by {{ order_by }}) as observation_rank,
        bool_or(channel = 'poll') over (partition by {{ key }}) as seen_by_poll,
        bool_or(channel = 'webhook') over (partition by {{ key }}) as seen_by_webhook,
        min(observed_at) over (partition by {{ key }}) as first_seen_at,
        max(observed_at) over (partition by {{ key }}) as last_observed_at
    from observations

)

select
    *,
    -- text, not an array: dbt unit tests cannot cast arrays; fct_usage_events makes the array
    concat_ws(',', case when seen_by_poll then 'poll' end, case when seen_by_webhook then 'webhook' end)
        as source_channels

from ranked
where observation_rank = 1
{% endmacro %}
