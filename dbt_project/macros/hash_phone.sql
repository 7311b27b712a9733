{# Phone numbers leave staging only as a salted hash; the salt is read from ops.pii_salt (written from BILLING_USAGE_PII_SALT before every build), never put in the SQL text. #}
{% macro hash_phone(expression) -%}
    case when {{ expression }} is not null
        then 'ph_' || left(md5((select salt from ops.pii_salt) || ':' || {{ expression }}), 16)
    end
{%- endmacro %}
