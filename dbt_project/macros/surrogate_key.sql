{# Stable surrogate key: md5 of the parts joined with ':' (nulls become empty strings). #}
{% macro surrogate_key(parts) -%}
    md5(concat_ws(':', {% for part in parts %}coalesce(({{ part }})::text, ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
