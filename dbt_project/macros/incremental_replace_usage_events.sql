{# fct_usage_events' incremental strategy: replace the stored rows of the recomputed objects by the new rows.
   - A build that recomputes every object (the directory changed) deletes every stored row first: a row
     it does not write again is stale (delete_stale_usage_events then has nothing to delete).
   - Otherwise it deletes the rows whose usage_event_id the new rows carry with `= any(array(...))`, which
     always probes the primary key, in key order. dbt's delete+insert (`in (select distinct ...)`) probed it
     in hash order on a day of a million events, and reads the whole table when the planner expects many
     rows: 44 s to 36 s for the delete and insert of that day. #}
{% macro get_incremental_replace_usage_events_sql(arg_dict) %}
    {%- set target, source, key = arg_dict['target_relation'], arg_dict['temp_relation'], arg_dict['unique_key'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if changed_usage_objects() == 'true' %}
    delete from {{ target }};
    {%- else %}
    delete from {{ target }} where {{ key }} = any(array(select {{ key }} from {{ source }}));
    {%- endif %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}
