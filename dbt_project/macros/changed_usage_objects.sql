{# Incremental bookkeeping for the models recomputed per changed provider object: fct_usage_events and
   quarantine.

   ops.usage_event_watermarks (created by billing_usage/tables.py) holds, per model and raw table of the
   registry, how far the model's last successful build read (`processed`) and how far the build under way
   reads (`pending`); fct_usage_events' rows are named by the raw table alone, the others' by
   `model:raw table` (_watermark_key). Nothing here writes while a model is rendered (compile, docs, show): the
   pre-hook pins `pending`, the model recomputes the objects whose raw rows lie in (processed, pending],
   the post-hooks delete stale rows of exactly those objects and move `processed` up to `pending`, all
   in the model's transaction, so a failed or killed build leaves the watermarks where they were.

   The directory is reloaded whole; a change to it may move any event's attribution, so it makes the
   build recompute everything. Its loads never overlap a build (they take the build's lock), so the
   fingerprint read while rendering is the one the pre-hook pins.

   The changed keys reach the query as one array per object kind, computed when it runs (an initplan
   parameter): PostgreSQL pushes `external_id = any($n)` through the staging and intermediate views
   down to the raw tables' key indexes, as it would a literal list, without the ids in the SQL text. #}

{# Registry tables that hold billable objects, with how progress is measured (load or received). #}
{% macro usage_event_raw_tables() %}
    {%- set tables = [] -%}
    {%- for source in graph.get('sources', {}).values() | sort(attribute='unique_id') -%}
        {%- set entry = source.meta.get('registry', {}) -%}
        {%- if entry.get('role') == 'objects' and entry.get('progress') in ('load', 'received') -%}
            {%- do tables.append({'source_name': source.source_name, 'name': source.name, 'schema': source.schema,
                                  'key': entry['key'],
                                  'object_kind': entry['object_kind'], 'progress': entry['progress'],
                                  'watermark': source.source_name ~ '.' ~ source.name}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(tables) }}
{% endmacro %}

{# The key the events carry as external_id: the key column, or a hash of several. #}
{% macro _object_key(table) -%}
    {{ table.key[0] if table.key | length == 1 else surrogate_key(table.key) }}
{%- endmacro %}

{# Progress as text: the dlt load id, or received_at in UTC ISO form. #}
{% macro _position(progress) -%}
    {%- if progress == 'load' -%} _dlt_load_id
    {%- else -%} to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
    {%- endif -%}
{%- endmacro %}

{# A hash of every resource assignment, read from the raw directory. #}
{% macro directory_fingerprint() -%}
    (select md5(coalesce(string_agg(concat_ws('|', resource_type, resource_id, client_id, agent_id, valid_from,
                                              valid_to), ',' order by resource_type, resource_id, valid_from), ''))
     from {{ raw_source('directory', 'resource_assignments') }})
{%- endmacro %}

{% macro _watermark_key(raw_table) -%}
    {{ raw_table if this.identifier == 'fct_usage_events' else this.identifier ~ ':' ~ raw_table }}
{%- endmacro %}

{% macro _watermark(raw_table, column) -%}
    (select {{ column }} from ops.usage_event_watermarks where raw_table = '{{ _watermark_key(raw_table) }}')
{%- endmacro %}

{# Rows after `processed` (up to `pending`, once pinned), compared on the raw column itself so its
   index serves. Webhook rows are re-read with an overlap, for deliveries committed after later ones.
   `processed`: the watermarks read while rendering (raw table -> value; a pin never moves them), compared
   as literals, so the planner estimates from the column's statistics (a parameter's guess of a third of
   the table picks a sequential scan). #}
{% macro _changed_rows(table, processed, up_to_pending=true, overlap_minutes=5) -%}
    {%- set value = processed.get(_watermark_key(table.watermark)) -%}
    {%- set since = ("'" ~ value ~ "'") if value is not none else 'null' -%}
    {%- if table.progress == 'load' -%}
        _dlt_load_id > coalesce({{ since }}, '')
        {%- if up_to_pending %} and _dlt_load_id <= {{ _watermark(table.watermark, 'pending') }}{% endif %}
    {%- else -%}
        received_at > coalesce({{ since }}::timestamp at time zone 'UTC', '-infinity') - interval '{{ overlap_minutes }} minutes'
        {%- if up_to_pending %}
        and received_at <= {{ _watermark(table.watermark, 'pending') }}::timestamp at time zone 'UTC'
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{# Pre-hook: pin, for every raw table, how far this build reads, and the directory it attributes with.
   fct_usage_events reads up to the newest raw row; the other models up to where fct_usage_events has
   processed, so they see only objects it has already billed or not. #}
{% macro pin_usage_event_watermarks() %}
    insert into ops.usage_event_watermarks (raw_table, pending)
    {% for table in usage_event_raw_tables() -%}
    select '{{ _watermark_key(table.watermark) }}', {{ _pin_position(table.watermark,
        "(select max(" ~ _position(table.progress) ~ ") from " ~ raw_source(table.source_name, table.name) ~ ")") }}
    union all
    {% endfor -%}
    select '{{ _watermark_key('directory') }}', {{ _pin_position('directory', directory_fingerprint()) }}
    on conflict (raw_table) do update set pending = excluded.pending
{% endmacro %}

{% macro _pin_position(raw_table, newest) -%}
    {{ newest if this.identifier == 'fct_usage_events' else
       "(select processed from ops.usage_event_watermarks where raw_table = '" ~ raw_table ~ "')" }}
{%- endmacro %}

{# The condition on (provider, object_type, external_id) selecting the objects to recompute: those with
   raw rows in the window, and pending prices that have just expired. `true` recomputes all of them: on a
   first build (or one from before a column existed), after the directory changed (attribution may move
   anywhere), or when more than `max_share` of the raw rows changed (recomputing everything is then
   cheaper; the share is of the tables' planner estimates, so a large day on a larger history stays
   incremental). For fct_usage_events, also its pending prices that have just expired. `unbilled_only`
   leaves out the objects fct_usage_events holds (quarantine: an object is billed or quarantined, never
   both, so only the others need normalizing again). Decided from reads only. #}
{% macro changed_usage_objects(max_share=0.5, unbilled_only=false) %}
    {%- set events = this.identifier == 'fct_usage_events' -%}
    {%- if not execute or not is_incremental() or (events and not has_column(this, 'cost_status')) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set watermarks = adapter.get_relation(database=target.database, schema='ops',
                                               identifier='usage_event_watermarks') -%}
    {%- if watermarks is none -%}{{ return('true') }}{%- endif -%}
    {%- set directory = run_query("select " ~ directory_fingerprint() ~ " is distinct from "
                                  ~ _watermark('directory', 'processed')) -%}
    {%- if directory.columns[0].values()[0] -%}{{ return('true') }}{%- endif -%}
    {%- set processed = {} -%}
    {%- for row in run_query("select raw_table, processed from ops.usage_event_watermarks").rows -%}
        {%- do processed.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {%- set counts, sizes = [], [] -%}
    {%- for table in usage_event_raw_tables() -%}
        {%- set relation = source(table.source_name, table.name) -%}
        {%- do counts.append("(select count(*) from " ~ raw_source(table.source_name, table.name) ~ " where "
            ~ _changed_rows(table, processed, up_to_pending=false) ~ ")") -%}
        {%- do sizes.append("coalesce((select greatest(reltuples, 0) from pg_class where oid = to_regclass('"
            ~ relation.schema ~ "." ~ relation.identifier ~ "')), 0)") -%}
    {%- endfor -%}
    {%- if run_query("select " ~ counts | join(" + ") ~ " > " ~ max_share ~ " * (" ~ sizes | join(" + ")
                     ~ ")").columns[0].values()[0] -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set keys_by_kind = {} -%}
    {%- for table in usage_event_raw_tables() -%}
        {%- set provider, object_type = table.object_kind.split(':') -%}
        {%- for kind in (['call', 'message'] if object_type == '*' else [object_type]) -%}
            {%- do keys_by_kind.setdefault(provider ~ ':' ~ kind, []).append(
                "coalesce((select array_agg(" ~ _object_key(table) ~ ") from "
                ~ raw_source(table.source_name, table.name) ~ " where " ~ _changed_rows(table, processed)
                ~ (" and resource = '" ~ kind ~ "'" if object_type == '*' else "") ~ "), '{}')") -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set conditions = [] -%}
    {%- for kind, arrays in keys_by_kind.items() -%}
        {%- set provider, object_type = kind.split(':') -%}
        {#- pending prices that have just expired change status without any new raw row -#}
        {%- if events -%}
        {%- do arrays.append("coalesce((select array_agg(external_id) from " ~ this ~ " where provider = '"
            ~ provider ~ "' and object_type = '" ~ object_type ~ "' and cost_status = 'pending' and occurred_at < "
            ~ pending_expires_before() ~ "), '{}')") -%}
        {%- endif -%}
        {%- set keys = "(" ~ arrays | join(" || ") ~ ")::text[]" -%}
        {%- if unbilled_only -%}
            {%- set keys = "(select coalesce(array_agg(changed.key), '{}') from unnest(" ~ keys ~ ") as changed(key)"
                ~ " where not exists (select 1 from " ~ ref('fct_usage_events') ~ " as billed where billed.provider = '"
                ~ provider ~ "' and billed.object_type = '" ~ object_type ~ "' and billed.external_id = changed.key))::text[]" -%}
        {%- endif -%}
        {%- do conditions.append("(provider = '" ~ provider ~ "' and object_type = '" ~ object_type
            ~ "' and external_id = any(" ~ keys ~ "))") -%}
    {%- endfor -%}
    {{ return('(' ~ conditions | join(' or ') ~ ')') }}
{% endmacro %}

{# Last post-hook: what this build read is now processed. #}
{% macro advance_usage_event_watermarks() %}
    update ops.usage_event_watermarks set processed = pending
    where raw_table in ('{{ _watermark_key('directory') }}'
        {%- for table in usage_event_raw_tables() %}, '{{ _watermark_key(table.watermark) }}'{% endfor %})
{% endmacro %}

{# Pre-hook of quarantine: delete the rows this build rewrites. #}
{% macro clear_changed_quarantine() %}
    {%- if is_incremental() -%}
    delete from {{ this }} where stage = 'collector' or (stage = 'normalization' and {{ changed_usage_objects() }})
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}
