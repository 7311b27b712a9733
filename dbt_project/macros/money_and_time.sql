{# Unit conversions, each done once, in staging. #}

{% macro cents_to_usd(expression) -%}
    (({{ expression }})::numeric * 0.01)
{%- endmacro %}

{% macro epoch_ms_to_timestamptz(expression) -%}
    to_timestamp(({{ expression }})::numeric / 1000)
{%- endmacro %}

{# A number given as text, or null when the text is not one (bad input must not stop the build). #}
{% macro safe_numeric(expression) -%}
    case when trim({{ expression }}) ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)$' then trim({{ expression }})::numeric end
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

{% macro json_number(expression) -%}
    ({{ expression }})::numeric
{%- endmacro %}
