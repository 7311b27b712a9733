{# Unit conversions, each done once, in staging. #}

{% macro cents_to_usd(expression) -%}
    (({{ expression }})::numeric * 0.01)
{%- endmacro %}

{% macro epoch_ms_to_timestamptz(expression) -%}
    to_timestamp(({{ expression }})::numeric / 1000)
{%- endmacro %}

{# Twilio reports charges as negative strings ("-0.00750"); null until the price settles. #}
{% macro twilio_charge_usd(expression) -%}
    (-1 * nullif(trim({{ expression }}), '')::numeric)
{%- endmacro %}

{# RFC 2822 ("Fri, 18 Oct 2019 17:00:00 +0000"); PostgreSQL reads it, offset included. #}
{% macro rfc2822_to_timestamptz(expression) -%}
    nullif(trim({{ expression }}), '')::timestamptz
{%- endmacro %}

{% macro json_number(expression) -%}
    ({{ expression }})::numeric
{%- endmacro %}
