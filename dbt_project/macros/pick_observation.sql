{# Given a CTE `observations` (one row per sighting of an object, with `channel` and `observed_at`),
   keep the best sighting per `key` by `order_by`, with the provenance of all sightings. #}
{% macro pick_observation(key, order_by) %}
provenance as (

    select
        {{ key }},
        string_agg(distinct channel, ',' order by channel) as source_channels,  -- text: dbt unit tests cannot cast arrays
        min(observed_at) as first_seen_at,
        max(observed_at) as last_observed_at
    from observations
    group by {{ key }}

),

ranked as (

    select *, row_number() over (partition by {{ key }} order by {{ order_by }}) as observation_rank
    from observations

)

select
    ranked.*,
    provenance.source_channels,
    provenance.first_seen_at,
    provenance.last_observed_at

from ranked
inner join provenance on provenance.{{ key }} = ranked.{{ key }}
where ranked.observation_rank = 1
{% endmacro %}
