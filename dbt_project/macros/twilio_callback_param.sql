{# A parameter of a Twilio status callback. The receiver keeps every value of a repeated form key, in
   order, as a JSON array; as Twilio documents no repeated status parameter, the last one wins. #}
{% macro twilio_callback_param(name) -%}
    (case jsonb_typeof(params -> '{{ name }}')
        when 'array' then params -> '{{ name }}' ->> -1
        else params ->> '{{ name }}'
    end)
{%- endmacro %}
