{# Stable surrogate key: md5 of the parts joined with ':' (nulls become empty strings). #}
{% macro surrogate_key(parts) -%}
    md5(concat_ws(':', {% for part in parts %}coalesce(({{ part }})::text, ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}

{# Phone numbers leave staging only as a salted hash. #}
{% macro hash_phone(expression) -%}
    case when {{ expression }} is not null
        then 'ph_' || left(md5('{{ var("pii_salt", "billing-usage") }}:' || {{ expression }}), 16)
    end
{%- endmacro %}
