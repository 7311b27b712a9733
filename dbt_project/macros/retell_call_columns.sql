{# Typed columns of a Retell call object given as jsonb: the same parsing for polled rows
   (to_jsonb of the raw row) and webhook payloads (payload -> 'call'). #}
{% macro retell_call_fields(call, call_id=none) %}
    {{ return([
        ('call_id', call_id or "(" ~ call ~ " ->> 'call_id')"),
        ('retell_agent_id', "(" ~ call ~ " ->> 'agent_id')"),
        ('agent_version', safe_integer("(" ~ call ~ " ->> 'agent_version')")),
        ('call_type', "(" ~ call ~ " ->> 'call_type')"),
        ('call_status', "(" ~ call ~ " ->> 'call_status')"),
        ('direction', "(" ~ call ~ " ->> 'direction')"),
        ('disconnection_reason', "(" ~ call ~ " ->> 'disconnection_reason')"),
        ('from_number', "(" ~ call ~ " ->> 'from_number')"),
        ('to_number', "(" ~ call ~ " ->> 'to_number')"),
        ('twilio_call_sid', "(" ~ call ~ " -> 'telephony_identifier' ->> 'twilio_call_sid')"),
        ('started_at', epoch_ms_to_timestamptz(json_number(call ~ " -> 'start_timestamp'"))),
        ('ended_at', epoch_ms_to_timestamptz(json_number(call ~ " -> 'end_timestamp'"))),
        ('duration_ms', json_number(call ~ " -> 'duration_ms'")),
        ('billed_duration_seconds', json_number(call ~ " -> 'call_cost' -> 'total_duration_seconds'")),
        ('combined_cost_usd', cents_to_usd(json_number(call ~ " -> 'call_cost' -> 'combined_cost'"))),
        ('product_costs', "(" ~ call ~ " -> 'call_cost' -> 'product_costs')"),
        ('llm_tokens', "(select sum(" ~ json_number('token_count') ~ ") from jsonb_array_elements("
                       ~ "case when jsonb_typeof(" ~ call ~ " -> 'llm_token_usage' -> 'values') = 'array' then "
                       ~ call ~ " -> 'llm_token_usage' -> 'values' end) as token_count)"),
        ('llm_requests', json_number(call ~ " -> 'llm_token_usage' -> 'num_requests'")),
    ]) }}
{% endmacro %}

{# `call_id`: the raw key column when there is one, so filters on it reach its index. #}
{% macro retell_call_columns(call, call_id=none) -%}
    {% for name, expression in retell_call_fields(call, call_id) -%}
    {{ expression }} as {{ name }}{{ "," if not loop.last }}
    {% endfor %}
{%- endmacro %}

{% macro retell_call_column_names() -%}
    {{ retell_call_fields('call') | map(attribute=0) | join(', ') }}
{%- endmacro %}
