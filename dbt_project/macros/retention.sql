{# ops.retention_purges: billing cycles whose detailed events retention has purged (their aggregates
   and adjustments stay forever). Created before every dbt run; written by dagster_project/retention.py. #}
{% macro create_retention_purges() %}
    create schema if not exists ops;
    create table if not exists ops.retention_purges (
        cycle_id text primary key,
        client_id text not null,
        cycle_start timestamptz not null,
        cycle_end timestamptz not null,
        cutoff timestamptz not null,
        events_purged bigint not null,
        cost_usd_purged numeric,
        purged_at timestamptz not null default now()
    );
{% endmacro %}

{# Events before this instant may have been purged: identities are checked from here on. #}
{% macro retention_horizon() -%}
    (select coalesce(max(cutoff), '-infinity'::timestamptz) from ops.retention_purges)
{%- endmacro %}
