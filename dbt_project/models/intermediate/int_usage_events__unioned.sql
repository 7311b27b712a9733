{# Every provider's candidate events, in one shape, before attribution and checks. #}
select * from {{ ref('int_usage_events__retell') }}
union all
select * from {{ ref('int_usage_events__twilio') }}
union all
select * from {{ ref('int_usage_events__openrouter') }}
