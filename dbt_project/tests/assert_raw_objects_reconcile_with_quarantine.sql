{# Accounting identity: every provider object that reached raw (by polling or webhook) is either in
   fct_usage_events or in quarantine, exactly once. It reads many models; meta.dagster.ref names the one
   it guards, so Dagster loads it as an asset check on marts/quarantine. #}
{{ config(meta={"dagster": {"ref": {"name": "quarantine"}}}) }}

with raw_objects as (

    select 'retell' as provider, 'call' as object_type, count(distinct call_id) as objects
    from {{ ref('int_retell_calls_merged') }}
    union all
    select 'retell' as provider, 'call' as object_type, count(*) as objects
    from {{ ref('stg_retell__quarantined_calls') }}
    union all
    select 'twilio' as provider, 'call' as object_type, count(*) as objects
    from {{ ref('int_twilio_calls_merged') }}
    union all
    select 'twilio' as provider, 'message' as object_type, count(*) as objects
    from {{ ref('int_twilio_messages_merged') }}
    union all
    select 'twilio' as provider, object_type, count(*) as objects
    from {{ ref('stg_twilio__quarantined_records') }}
    group by object_type
    union all
    select 'openrouter' as provider, 'activity' as object_type, count(*) as objects
    from {{ ref('stg_openrouter__activity') }}

),

raw_totals as (

    select provider, object_type, sum(objects) as objects from raw_objects group by provider, object_type

),

accounted as (

    select provider, object_type, count(distinct external_id) as objects
    from {{ ref('fct_usage_events') }}
    group by provider, object_type
    union all
    select provider, object_type, count(distinct coalesce(external_id, quarantine_id)) as objects
    from {{ ref('quarantine') }}
    group by provider, object_type

),

accounted_totals as (

    select provider, object_type, sum(objects) as objects from accounted group by provider, object_type

)

select *
from raw_totals
full outer join accounted_totals using (provider, object_type)
where raw_totals.objects is distinct from accounted_totals.objects
  and coalesce(raw_totals.objects, 0) + coalesce(accounted_totals.objects, 0) > 0
