{# The raw rows of every object whose events fall in a cycle retention may purge: per registry table
   of objects, the table, its row id column (_dlt_id for dlt tables, delivery_id for the receiver's)
   and the row ids. #}
with purged_objects as (

    select distinct cycles.cycle_id, events.provider || ':' || events.object_type as object_kind, events.external_id
    from {{ ref('retention_cycles') }} as cycles
    inner join {{ ref('fct_usage_events') }} as events
        on events.client_id = cycles.client_id
        and events.occurred_at >= cycles.cycle_start
        and events.occurred_at < cycles.cycle_end
    where cycles.may_purge
      and events.occurred_at >= (select min(cycle_start) from {{ ref('retention_cycles') }} where may_purge)
      and events.occurred_at < (select max(cycle_end) from {{ ref('retention_cycles') }} where may_purge)

)

{% for table in usage_event_raw_tables() %}
{%- set row_id = 'delivery_id' if table.progress == 'received' else '_dlt_id' -%}
{%- set kind = "'twilio:' || raw.resource" if table.object_kind == 'twilio:*' else "'" ~ table.object_kind ~ "'" -%}
select
    purged_objects.cycle_id,
    '{{ table.schema }}.{{ table.name }}' as raw_table,
    '{{ row_id }}' as row_id_column,
    raw.{{ row_id }}::text as row_id
from (select * from {{ raw_source(table.source_name, table.name) }}) as raw
inner join purged_objects
    on purged_objects.object_kind = {{ kind }}
    and purged_objects.external_id = {{ _object_key(table) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
