{# Unit conversions, each done once, in staging. #}

{# `number`: a numeric expression (json_number, safe_numeric). #}
{% macro cents_to_usd(number) -%}
    ({{ number }} * 0.01)
{%- endmacro %}

{# Epoch milliseconds, given as a numeric expression; null outside years 1970..5000 (bad input must not
   stop the build). #}
{% macro epoch_ms_to_timestamptz(number) -%}
    to_timestamp(case when {{ number }} between 0 and 95617584000000 then {{ number }} / 1000 end)
{%- endmacro %}

{# A number given as text (exponents included, as JSON writes them), or null when the text is not
   one (bad input must not stop the build). #}
{% macro safe_numeric(expression) -%}
    case when trim({{ expression }}) ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]{1,3})?$'
        then trim({{ expression }})::numeric end
{%- endmacro %}

{# A whole number given as text, or null when it is not one or does not fit an integer. #}
{% macro safe_integer(expression) -%}
    case when trim({{ expression }}) ~ '^[+-]?[0-9]{1,9}$' then trim({{ expression }})::integer end
{%- endmacro %}

{# Twilio reports charges as negative strings ("-0.00750"); null until the price settles. #}
{% macro twilio_charge_usd(expression) -%}
    (-1 * {{ safe_numeric(expression) }})
{%- endmacro %}

{# RFC 2822 ("Fri, 18 Oct 2019 17:00:00 +0000"); PostgreSQL reads it, offset included.
   Anything else becomes null, which quarantines the event as unparseable. #}
{% macro rfc2822_to_timestamptz(expression) -%}
    case
        when trim({{ expression }}) ~ '^([A-Z][a-z]{2}, )?[0-9]{1,2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}$'
            then trim({{ expression }})::timestamptz
    end
{%- endmacro %}

{# A jsonb value as a number: a JSON number cast directly (no text round trip), a string as safe_numeric
   reads it, anything else null. #}
{% macro json_number(json) -%}
    case jsonb_typeof({{ json }})
        when 'number' then ({{ json }})::numeric
        when 'string' then {{ safe_numeric("(" ~ json ~ " #>> '{}')") }}
    end
{%- endmacro %}
