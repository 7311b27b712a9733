{# Each candidate event with the reason it cannot be trusted, if any. A reason on any metric row
   quarantines the whole provider object, so an object is either billed or quarantined, never split. #}
{% set limits = var('absurd_quantity_limits') %}
{% set currencies = var('known_currencies') %}

with events as (

    select * from {{ ref('int_usage_events_attributed') }}

),

checked as (

    select
        *,
        case
            when external_id is null then 'missing_id'
            when metric is null then 'unknown_metric'
            when occurred_at is null then 'unparseable_timestamp'
            when currency is not null and currency not in ({{ "'" ~ currencies | join("', '") ~ "'" }})
                then 'unknown_currency'
            when quantity < 0 then 'negative_quantity'
            when cost_native < 0 then 'negative_cost'
            {% for metric, limit in limits.items() -%}
            when metric = '{{ metric }}' and quantity > {{ limit }} then 'absurd_quantity'
            {% endfor -%}
        end as row_reason
    from events

)

select
    *,
    max(row_reason) over (partition by provider, object_type, external_id) as quarantine_reason

from checked
