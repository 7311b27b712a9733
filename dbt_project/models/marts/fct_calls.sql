{# One row per conversation: the Retell call, its Twilio leg and its LLM usage, with the cost per
   provider and in total. Legs and calls that do not find each other are kept and labelled.
   Incremental: a build deletes and recomputes only the conversations touched by the client-days whose
   events changed since the last one (changed_conversation_keys), found once by its pre-hook into a
   temporary table that the query reads: so `dbt show` cannot run this model alone on an incremental build. #}
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    pre_hook=["{{ pin_rollup_watermark() }}", "{{ clear_changed_conversations() }}"],
    post_hook=["{{ advance_rollup_watermark() }}", "{{ ensure_index(this, 'call_id') }}",
               "{{ ensure_index(this, 'twilio_call_sid') }}", "{{ ensure_index(this, 'started_at') }}"],
) }}
{% set rebuilt_only = is_incremental() and not rebuilds_all_changes() %}

with events as (

    {%- if rebuilt_only %}
    {#- the events of the recomputed calls and legs, found by the pre-hook (clear_changed_conversations) #}
    select * from {{ rebuilt_conversations() }}
    {%- else %}
    select {{ conversation_event_columns() }} from {{ ref('fct_usage_events') }}
    where provider in ('retell', 'twilio') and object_type = 'call'
    {%- endif %}

),

retell as (

    select
        external_id as call_id,
        max(linked_external_id) as twilio_call_sid,
        max(client_id) as client_id,
        max(agent_id) as agent_id,
        min(occurred_at) as started_at,
        max(call_type) as call_type,
        max(workspace) as workspace,
        max(retell_agent_id) as retell_agent_id,
        sum(quantity) filter (where metric = 'voice_seconds') as retell_billed_seconds,
        sum(quantity) filter (where metric = 'llm_tokens') as llm_tokens,
        sum(cost_usd) as retell_cost_usd
    from events
    where provider = 'retell'
    group by external_id

),

twilio as (

    select
        external_id as twilio_call_sid,
        client_id,
        agent_id,
        occurred_at as started_at,
        quantity as twilio_billed_minutes,
        cost_usd as twilio_cost_usd
    from events
    where provider = 'twilio' and metric = 'voice_minutes'

)

select
    coalesce(retell.call_id, 'twilio:' || twilio.twilio_call_sid) as conversation_id,
    retell.call_id,
    coalesce(retell.twilio_call_sid, twilio.twilio_call_sid) as twilio_call_sid,
    coalesce(retell.client_id, twilio.client_id) as client_id,
    coalesce(retell.agent_id, twilio.agent_id) as agent_id,
    coalesce(retell.started_at, twilio.started_at) as started_at,
    retell.call_type,
    retell.retell_billed_seconds,
    twilio.twilio_billed_minutes,
    retell.llm_tokens,
    retell.retell_cost_usd,
    twilio.twilio_cost_usd,
    coalesce(retell.retell_cost_usd, 0) + coalesce(twilio.twilio_cost_usd, 0) as total_cost_usd,
    case
        when retell.call_id is not null and twilio.twilio_call_sid is not null then 'matched'
        when retell.call_id is not null and retell.call_type = 'web_call' then 'web_call'
        when retell.call_id is not null and retell.twilio_call_sid is null then 'retell_without_telephony_id'
        when retell.call_id is not null then 'retell_leg_missing'
        else 'twilio_without_retell_call'
    end as link_status,
    retell.client_id is not null and twilio.client_id is not null and retell.client_id <> twilio.client_id
        as client_mismatch,
    retell.workspace as retell_workspace,
    retell.retell_agent_id

from retell
full outer join twilio on twilio.twilio_call_sid = retell.twilio_call_sid
