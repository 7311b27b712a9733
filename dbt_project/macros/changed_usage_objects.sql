{# Incremental bookkeeping for fct_usage_events.

   ops.usage_event_watermarks holds, per raw table, how far the last successful build read
   (`processed`) and how far the build under way reads (`pending`). Rendering the model fixes
   `pending` to what is visible now; the post-hooks delete stale rows for exactly the same object set
   and then move `processed` up to `pending`. A failed build leaves `processed` where it was. #}

{% macro usage_event_raw_tables() %}
{# (object kind, source, table, key column, progress measured by: dlt load id, received_at, or a
   hash of the content for the directory, which is reloaded whole every run) #}
{{ return([
    ('retell:call', 'retell', 'calls', 'call_id', 'load'),
    ('retell:call', 'retell_webhooks', 'retell_events', 'call_id', 'received'),
    ('twilio:call', 'twilio', 'calls', 'sid', 'load'),
    ('twilio:message', 'twilio', 'messages', 'sid', 'load'),
    ('twilio:*', 'twilio_webhooks', 'twilio_callbacks', 'sid', 'received'),
    ('openrouter:activity', 'openrouter', 'activity', none, 'load'),
    ('directory:*', 'directory', 'resource_assignments', none, 'content'),
]) }}
{% endmacro %}

{% macro usage_event_watermarks_table() -%}
    {%- do run_query("create schema if not exists ops; create table if not exists ops.usage_event_watermarks "
                     ~ "(raw_table text primary key, processed text, pending text)") -%}
    ops.usage_event_watermarks
{%- endmacro %}

{# Progress as text: the dlt load id, or received_at in UTC ISO form. #}
{% macro _position_text(kind) -%}
    {%- if kind == 'load' -%} max(_dlt_load_id)
    {%- elif kind == 'received' -%} max(to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
    {%- else -%} md5(string_agg(concat_ws('|', resource_type, resource_id, client_id, agent_id, valid_from, valid_to),
                               ',' order by resource_type, resource_id, valid_from))
    {%- endif -%}
{%- endmacro %}

{# Rows after `processed` (less an overlap for late commits of webhook rows) up to `pending`,
   compared on the raw column itself so its index serves. #}
{% macro _window_condition(kind, processed, pending, overlap_minutes) -%}
    {%- if kind == 'load' -%}
        _dlt_load_id > '{{ processed }}'{% if pending %} and _dlt_load_id <= '{{ pending }}'{% endif %}
    {%- else -%}
        received_at > ('{{ processed }}'::timestamp at time zone 'UTC') - interval '{{ overlap_minutes }} minutes'
        {%- if pending %} and received_at <= ('{{ pending }}'::timestamp at time zone 'UTC'){% endif %}
    {%- endif -%}
{%- endmacro %}

{# Called while rendering the model: pins `pending` for every raw table. #}
{% macro pin_usage_event_watermarks() %}
    {%- set table = usage_event_watermarks_table() -%}
    {%- for _, source_name, table_name, _, kind in usage_event_raw_tables() -%}
        {%- do run_query("insert into " ~ table ~ " (raw_table, pending) select '" ~ source_name ~ "." ~ table_name
            ~ "', " ~ _position_text(kind) ~ " from " ~ raw_source(source_name, table_name)
            ~ " on conflict (raw_table) do update set pending = excluded.pending") -%}
    {%- endfor -%}
{% endmacro %}

{# The condition on (provider, object_type, external_id) selecting the objects to recompute. #}
{% macro changed_usage_objects(overlap_minutes=5, max_keys=200000) %}
    {%- if not execute or not is_incremental() or not has_column(this, 'last_observed_at') -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set table = usage_event_watermarks_table() -%}
    {%- set marks = {} -%}
    {%- for row in run_query("select raw_table, processed, pending from " ~ table).rows -%}
        {%- do marks.update({row[0]: (row[1], row[2])}) -%}
    {%- endfor -%}
    {%- set directory = marks.get('directory.resource_assignments', (none, none)) -%}
    {%- if directory[0] is none or directory[0] != directory[1] -%}{{ return('true') }}{%- endif -%}
    {%- set selects = [] -%}
    {%- for object_kind, source_name, table_name, key, kind in usage_event_raw_tables()
            if object_kind != 'directory:*' -%}
        {%- set processed, pending = marks.get(source_name ~ '.' ~ table_name, (none, none)) -%}
        {%- if processed is none and pending is not none -%}{{ return('true') }}{%- endif -%}
        {%- set kind_expression = "'twilio:' || resource" if object_kind == 'twilio:*' else "'" ~ object_kind ~ "'" -%}
        {%- set key_expression = key or surrogate_key(['date', 'api_key_hash', 'model_permaslug', 'endpoint_id']) -%}
        {%- if pending is not none -%}
        {%- do selects.append("select " ~ kind_expression ~ ", " ~ key_expression ~ " from "
            ~ raw_source(source_name, table_name) ~ " where "
            ~ _window_condition(kind, processed, pending, overlap_minutes)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do selects.append("select provider || ':' || object_type, external_id from " ~ this
                          ~ " where attribution_status <> 'attributed'") -%}
    {%- set changed = run_query(selects | join(' union ')) -%}
    {%- if changed.rows | length > max_keys -%}{{ return('true') }}{%- endif -%}
    {%- set by_kind = {} -%}
    {%- for row in changed.rows -%}
        {%- do by_kind.setdefault(row[0], []).append(row[1]) -%}
    {%- endfor -%}
    {%- if not by_kind -%}{{ return('false') }}{%- endif -%}
    {%- set conditions = [] -%}
    {%- for kind, ids in by_kind.items() -%}
        {%- set provider, object_type = kind.split(':') -%}
        {%- do conditions.append("(provider = '" ~ provider ~ "' and object_type = '" ~ object_type
            ~ "' and external_id = any(array['" ~ ids | map('replace', "'", "''") | join("','") ~ "']::text[]))") -%}
    {%- endfor -%}
    {{ return('(' ~ conditions | join(' or ') ~ ')') }}
{% endmacro %}

{# Post-hook: rows of recomputed objects that are no longer billable (quarantined now, or a metric
   gone). Their days are recorded in ops.usage_event_removals so fct_daily_usage rebuilds them. #}
{% macro delete_stale_usage_events() %}
    {%- set changed = changed_usage_objects() -%}
    {%- do run_query("create table if not exists ops.usage_event_removals "
                     ~ "(usage_date date not null, removed_at timestamptz not null default clock_timestamp())") -%}
    with removed as (
        delete from {{ this }}
        where ({{ changed }})
          and usage_event_id not in (
              select md5(idempotency_key) from {{ ref('int_usage_events_checked') }}
              where quarantine_reason is null and ({{ changed }})
          )
        returning usage_date
    )
    insert into ops.usage_event_removals (usage_date) select distinct usage_date from removed
{% endmacro %}

{# Last post-hook: what this build read is now processed. #}
{% macro advance_usage_event_watermarks() %}
    update {{ usage_event_watermarks_table() }} set processed = pending
{% endmacro %}
