{# Whether an existing relation already has a column (a table built by an older version may not). #}
{% macro has_column(relation, column_name) -%}
    {{ return(column_name in (adapter.get_columns_in_relation(relation) | map(attribute='name') | list)) }}
{%- endmacro %}
