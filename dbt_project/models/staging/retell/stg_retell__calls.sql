with source as (

    select * from {{ source('retell', 'calls') }}

),

renamed as (

    select
        call_id,
        workspace,
        agent_id as retell_agent_id,
        agent_version,
        call_type,
        call_status,
        direction,
        disconnection_reason,
        from_number,
        to_number,
        telephony_identifier ->> 'twilio_call_sid' as twilio_call_sid,
        {{ epoch_ms_to_timestamptz('start_timestamp') }} as started_at,
        {{ epoch_ms_to_timestamptz('end_timestamp') }} as ended_at,
        duration_ms,
        {{ json_number("call_cost ->> 'total_duration_seconds'") }} as billed_duration_seconds,
        {{ cents_to_usd("call_cost ->> 'combined_cost'") }} as combined_cost_usd,
        call_cost -> 'product_costs' as product_costs,
        (
            select sum(value::numeric)
            from jsonb_array_elements_text(llm_token_usage -> 'values')
        ) as llm_tokens,
        {{ json_number("llm_token_usage ->> 'num_requests'") }} as llm_requests,
        to_timestamp(_dlt_load_id::numeric) as loaded_at

    from source

)

select * from renamed
