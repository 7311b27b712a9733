{# fct_usage_events' incremental strategy: replace every stored row of the recomputed objects by the new rows,
   and log in ops.usage_event_changes the client-days they lay on before and lie on after.
   - Deleting all rows of the recomputed objects (through the (provider, object_type, external_id) index)
     removes the rows still to be written and the stale ones alike: an object now quarantined, a metric gone.
     The new rows' previous values were read when the temp table was built, before this runs.
   - A build that recomputes every object (the directory changed) deletes every stored row and logs one row
     with a null client, meaning everything.
   - The days come from the deleted rows (RETURNING) and from the temp table, so neither the model's rows
     nor its indexes are read again after the insert. #}
{% macro get_incremental_replace_usage_events_sql(arg_dict) %}
    {%- set target, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set changed = changed_usage_objects() -%}
    {%- if changed == 'true' %}
    delete from {{ target }};
    {{ _log_usage_event_changes(changed) }};
    {%- else %}
    with replaced as (
        delete from {{ target }} where {{ changed }}
        returning client_id, usage_date
    )
    {{ _log_usage_event_changes(changed, rows='replaced') }};
    {{ _log_usage_event_changes(changed, rows=source) }};
    {%- endif %}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{% endmacro %}
