{# Incremental strategy `replace_by_key`: delete the target's rows whose unique_key the new rows carry, then
   insert the new rows; dbt's delete+insert does the same, but its `in (select ...)` lets the planner read
   the whole target when the new rows are many (a day of a million events). `= any(array(...))` always
   probes the key's index, in key order. #}
{% macro get_incremental_replace_by_key_sql(arg_dict) %}
    {%- set target, source, key = arg_dict['target_relation'], arg_dict['temp_relation'], arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where {{ key }} = any(array(select {{ key }} from {{ source }}));
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}
