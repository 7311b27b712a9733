{# A raw table exists only once its collector first wrote to it (dlt creates tables lazily), and a
   provider that has never answered leaves its tables missing. Select from the table if it exists,
   else from an empty row set of the columns its sources YAML declares, so the other providers still
   reach the marts. The source() call comes first so lineage is recorded either way. In a unit test
   source() is the CTE of the test's given rows, which is never looked up. #}
{% macro raw_source(source_name, table_name) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and not relation.is_cte and load_relation(relation) is none -%}
        {%- set declared = graph.sources.values() | selectattr('source_name', 'equalto', source_name)
                                                  | selectattr('name', 'equalto', table_name) | first -%}
        (select
            {%- for column in declared.columns.values() %} null::{{ column.data_type }} as {{ adapter.quote(column.name) }},
            {%- endfor %} null::varchar as _dlt_load_id, null::varchar as _dlt_id
         where false) as not_loaded_yet
    {%- else -%}
        {{ relation }}
    {%- endif -%}
{%- endmacro %}

{# Generic tests on a raw table that does not exist yet have nothing to test. #}
{% macro postgres__test_not_null(model, column_name) -%}
    {%- if execute and model is not string and load_relation(model) is none -%}
        select null where false
    {%- else -%}
        {{ dbt.default__test_not_null(model, column_name) }}
    {%- endif -%}
{%- endmacro %}

{% macro postgres__test_unique(model, column_name) -%}
    {%- if execute and model is not string and load_relation(model) is none -%}
        select null as unique_field, 0 as n_records where false
    {%- else -%}
        {{ dbt.default__test_unique(model, column_name) }}
    {%- endif -%}
{%- endmacro %}
