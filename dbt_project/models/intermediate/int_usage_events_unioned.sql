{# Every provider's candidate events, in one shape, before attribution and checks. #}
select * from {{ ref('int_retell_usage_events') }}
union all
select * from {{ ref('int_twilio_usage_events') }}
union all
select * from {{ ref('int_openrouter_usage_events') }}
