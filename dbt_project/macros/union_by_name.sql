{# `union all` of relations or CTEs that matches columns by name: every branch selects `columns`, in that order. #}
{% macro union_by_name(relations, columns) -%}
    {%- for relation in relations %}
    select {{ columns | join(', ') }} from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}
