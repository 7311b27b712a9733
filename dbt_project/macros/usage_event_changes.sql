{# Which billing cycles a build must recompute.

   fct_usage_events logs in ops.usage_event_changes every client x UTC day whose events it rewrites or
   removes, before and after the change (an event may move to another client or day); a build that
   recomputes every object logs one row with a null client, meaning everything. The cycle models read the
   log from their own watermark in ops.rollup_watermarks, pinned by a pre-hook and advanced by a post-hook
   in the model's transaction, as fct_usage_events does with its raw tables. Builds are serialized, so
   changed_at only grows from one build to the next. Nothing here runs a query while rendering. #}

{# Pre- and post-hook of fct_usage_events: log the client-days of the objects this build recomputes. #}
{% macro log_usage_event_changes(before=false) %}
    {%- if before and not is_incremental() -%}
    select 1
    {%- else -%}
    {%- set changed = changed_usage_objects() -%}
    {%- if before -%}
    delete from ops.usage_event_changes
    where changed_at <= (select min(processed) from ops.rollup_watermarks);
    {% endif -%}
    insert into ops.usage_event_changes (client_id, usage_date)
    {% if changed == 'true' -%}
    values (null, null)
    {%- else -%}
    select distinct client_id, usage_date from {{ this }} where {{ changed }}
    {%- endif -%}
    {%- endif -%}
{% endmacro %}

{# Pre-hook of a model reading the log: pin the last change this build reads. #}
{% macro pin_rollup_watermark() %}
    insert into ops.rollup_watermarks (model, pending)
    values ('{{ this.identifier }}',
            (select coalesce(max(changed_at), '-infinity') from ops.usage_event_changes))
    on conflict (model) do update set pending = excluded.pending
{% endmacro %}

{# Last post-hook of a model reading the log: what it read is now processed. #}
{% macro advance_rollup_watermark() %}
    update ops.rollup_watermarks set processed = pending where model = '{{ this.identifier }}'
{% endmacro %}

{# A condition on a relation of cycles (alias `cycles`): true when events of the cycle changed since the
   model's last build, or when the model has none yet. #}
{% macro cycle_has_changes(cycles='cycles') -%}
    {%- if not is_incremental() -%}
    true
    {%- else -%}
    ((select processed from ops.rollup_watermarks where model = '{{ this.identifier }}') is null
     or exists (
        select 1 from ops.usage_event_changes as changes
        where changes.changed_at > (select processed from ops.rollup_watermarks where model = '{{ this.identifier }}')
          and changes.changed_at <= (select pending from ops.rollup_watermarks where model = '{{ this.identifier }}')
          and (changes.client_id is null
               or (changes.client_id = {{ cycles }}.client_id
                   and changes.usage_date >= ({{ cycles }}.cycle_start at time zone 'UTC')::date
                   and changes.usage_date <= ({{ cycles }}.cycle_end at time zone 'UTC')::date))
     ))
    {%- endif -%}
{%- endmacro %}
