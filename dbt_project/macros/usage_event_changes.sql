{# What the models downstream of fct_usage_events recompute: the day rollups, the cycle models and fct_calls.

   fct_usage_events logs in ops.usage_event_changes every client x UTC day whose events it rewrites or
   removes, before and after the change (an event may move to another client or day); a build that
   recomputes every object logs one row with a null client, meaning everything. Those models read the log
   from their own watermark in ops.rollup_watermarks, pinned by a pre-hook and advanced by a post-hook in
   the model's transaction, as fct_usage_events does with its raw tables.
   Builds are serialized, so changed_at only grows from one build to the next. Rendering only reads;
   the hooks write. #}

{# Pre-hook of fct_usage_events: trim what every reader has read. Its strategy (replace_usage_events) logs the
   client-days of the events it rewrites or removes; a first build or full refresh logs everything
   (log_all_usage_event_changes). #}
{% macro trim_usage_event_changes() %}
    {%- if is_incremental() -%}
    delete from ops.usage_event_changes
    where changed_at <= (select min(processed) from ops.rollup_watermarks)
    {%- else -%}
    select 1
    {%- endif -%}
{% endmacro %}

{% macro log_all_usage_event_changes() %}
    {%- if is_incremental() -%}
    select 1
    {%- else -%}
    {{ _log_usage_event_changes('true') }}
    {%- endif -%}
{% endmacro %}

{# `changed`: the recomputed objects ('true' for all of them, logged as one row with a null client);
   `rows`: the relation holding their events' client_id and usage_date. #}
{% macro _log_usage_event_changes(changed, rows=none) -%}
    insert into ops.usage_event_changes (client_id, usage_date)
    {% if changed == 'true' -%}
    values (null, null)
    {%- else -%}
    select distinct client_id, usage_date from {{ rows }}
    {%- endif -%}
{%- endmacro %}

{# Pre-hook of a model reading the log: pin the last change this build reads. A model built from another
   reader (`built_from`) reads no further than that one has processed, so it never sums a stale input. #}
{% macro pin_rollup_watermark(built_from=none) %}
    insert into ops.rollup_watermarks (model, pending)
    values ('{{ this.identifier }}',
            {%- if built_from %}
            coalesce((select processed from ops.rollup_watermarks where model = '{{ built_from }}'), '-infinity')
            {%- else %}
            (select coalesce(max(changed_at), '-infinity') from ops.usage_event_changes)
            {%- endif %})
    on conflict (model) do update set pending = excluded.pending
{% endmacro %}

{# Last post-hook of a model reading the log: what it read is now processed. #}
{% macro advance_rollup_watermark() %}
    update ops.rollup_watermarks set processed = pending where model = '{{ this.identifier }}'
{% endmacro %}

{# Whether this build of a model reading the log recomputes everything: on its first build, before its
   watermark exists, and after fct_usage_events recomputed every object. Decided from reads only. #}
{% macro rebuilds_all_changes() %}
    {%- if not execute or not is_incremental() -%}{{ return(true) }}{%- endif -%}
    {%- set everything = run_query("select processed is null or exists (select 1 from ops.usage_event_changes "
        ~ "where client_id is null and changed_at > processed) from (select (select processed from "
        ~ "ops.rollup_watermarks where model = '" ~ this.identifier ~ "') as processed) as watermark") -%}
    {{ return(everything.columns[0].values()[0]) }}
{% endmacro %}

{# The log's rows this build reads, under the alias `changes`. #}
{% macro changes_since_last_build() -%}
    changes.changed_at > (select processed from ops.rollup_watermarks where model = '{{ this.identifier }}')
    and changes.changed_at <= (select pending from ops.rollup_watermarks where model = '{{ this.identifier }}')
{%- endmacro %}

{# A condition on a relation of cycles: true when events of the cycle changed since the model's last build. #}
{% macro cycle_has_changes(cycles='cycles') -%}
    {%- if rebuilds_all_changes() -%}
    true
    {%- else -%}
    exists (
        select 1 from ops.usage_event_changes as changes
        where {{ changes_since_last_build() }}
          and changes.client_id = {{ cycles }}.client_id
          and changes.usage_date >= ({{ cycles }}.cycle_start at time zone 'UTC')::date
          and changes.usage_date <= ({{ cycles }}.cycle_end at time zone 'UTC')::date
    )
    {%- endif -%}
{%- endmacro %}

{# CTEs naming what fct_calls recomputes: the Retell calls and Twilio legs of the changed client-days, the
   legs those calls link to, every stored conversation holding one of them or lying on a changed client-day
   (so a removed call or leg leaves its conversation), and both keys of those. `changed_day_calls` holds the
   call events of the changed days. #}
{% macro changed_conversation_keys() -%}
    changed_days as (

        select distinct client_id, usage_date from ops.usage_event_changes as changes
        where {{ changes_since_last_build() }}

    ),

    {#- each changed day is read once, then matched to its changed clients: joined per client-day, the
        usage_date index read the whole day again for every client #}
    changed_day_calls as materialized (

        select {{ conversation_event_columns() }}
        from {{ ref('fct_usage_events') }}
        where provider in ('retell', 'twilio') and object_type = 'call'
          and usage_date in (select usage_date from changed_days)

    ),

    changed_calls as (

        select distinct calls.provider, calls.external_id, calls.linked_external_id
        from changed_day_calls as calls
        inner join changed_days
            on changed_days.client_id = calls.client_id and changed_days.usage_date = calls.usage_date

    ),

    stored_conversations as (

        {#- one branch per index of fct_calls: call_id, twilio_call_sid, started_at #}
        select ctid as stored_row, call_id, twilio_call_sid from {{ this }}
        where call_id in (select external_id from changed_calls where provider = 'retell')
        union
        select ctid, call_id, twilio_call_sid from {{ this }}
        where twilio_call_sid in (select external_id from changed_calls where provider = 'twilio'
                                  union all
                                  select linked_external_id from changed_calls where provider = 'retell')
        union
        select stored.ctid, stored.call_id, stored.twilio_call_sid
        from {{ this }} as stored
        inner join changed_days
            on stored.client_id = changed_days.client_id
            and stored.started_at >= changed_days.usage_date::timestamp at time zone 'UTC'
            and stored.started_at < (changed_days.usage_date + 1)::timestamp at time zone 'UTC'
        {#- the span of the changed days, as a range the started_at index serves #}
        where stored.started_at >= (select min(usage_date) from changed_days)::timestamp at time zone 'UTC'
          and stored.started_at < (select max(usage_date) + 1 from changed_days)::timestamp at time zone 'UTC'

    ),

    rebuilt_calls as (

        select external_id as call_id from changed_calls where provider = 'retell'
        union
        select call_id from stored_conversations where call_id is not null

    ),

    rebuilt_legs as (

        select external_id as call_sid from changed_calls where provider = 'twilio'
        union
        select linked_external_id from changed_calls where provider = 'retell' and linked_external_id is not null
        union
        select twilio_call_sid from stored_conversations where twilio_call_sid is not null

    )
{%- endmacro %}

{# The call events fct_calls reads: what its conversations are made of. #}
{% macro conversation_event_columns() -%}
    provider, external_id, linked_external_id, client_id, agent_id, usage_date, occurred_at, metric, quantity,
    cost_usd, attributes ->> 'call_type' as call_type, attributes ->> 'workspace' as workspace,
    attributes ->> 'retell_agent_id' as retell_agent_id
{%- endmacro %}

{# The temporary table of an incremental fct_calls build: the call events of every Retell call and Twilio
   leg it recomputes. #}
{% macro rebuilt_conversations() -%}
    fct_calls__rebuilt
{%- endmacro %}

{# Pre-hook of fct_calls, one statement: delete the stored conversations this build recomputes, found once,
   and keep the events to recompute them from in rebuilt_conversations, which the model's query reads. #}
{% macro clear_changed_conversations() %}
    {%- if not is_incremental() -%}
    select 1
    {%- elif rebuilds_all_changes() -%}
    delete from {{ this }}
    {%- else -%}
    create temporary table {{ rebuilt_conversations() }} on commit drop as
    with {{ changed_conversation_keys() }},

    cleared as (

        delete from {{ this }} where ctid = any(array(select stored_row from stored_conversations))

    )

    {#- the rebuilt calls and legs from the changed days' events, already read; the few with no event on a
        changed day (a leg across midnight, the other half of a stored conversation) by key, one semi-join
        per provider on the (provider, object_type, external_id) index #}
    select * from changed_day_calls
    where (provider = 'retell' and external_id in (select call_id from rebuilt_calls))
       or (provider = 'twilio' and external_id in (select call_sid from rebuilt_legs))
    union all
    select {{ conversation_event_columns() }} from {{ ref('fct_usage_events') }}
    where provider = 'retell' and object_type = 'call'
      and external_id in (select call_id from rebuilt_calls
                          except select external_id from changed_day_calls where provider = 'retell')
    union all
    select {{ conversation_event_columns() }} from {{ ref('fct_usage_events') }}
    where provider = 'twilio' and object_type = 'call'
      and external_id in (select call_sid from rebuilt_legs
                          except select external_id from changed_day_calls where provider = 'twilio')
    {%- endif -%}
{% endmacro %}
