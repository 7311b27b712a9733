{# Stable surrogate key: md5 of the parts joined with ':' (nulls become empty strings). #}
{% macro surrogate_key(parts) -%}
    md5(concat_ws(':', {% for part in parts %}coalesce(({{ part }})::text, ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}

{# Phone numbers leave staging only as a salted hash. #}
{% macro hash_phone(expression) -%}
    case when {{ expression }} is not null
        then 'ph_' || left(md5('{{ var("pii_salt", "billing-usage") }}:' || {{ expression }}), 16)
    end
{%- endmacro %}

{# A source table that exists only once something was written to it (dlt creates tables lazily):
   select from it if it exists, else from an empty row set of the given columns. The source() call
   comes first so lineage is recorded either way. #}
{% macro optional_source(source_name, table_name, empty_columns) -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- if execute and load_relation(relation) is none -%}
    (select {% for name, type in empty_columns.items() %}null::{{ type }} as {{ name }}{{ ", " if not loop.last }}{% endfor %} where false) as not_created_yet
    {%- else -%}
    {{ relation }}
    {%- endif -%}
{%- endmacro %}

{# What makes an event different for billing: a change here moves last_changed_at. #}
{% macro usage_event_content(alias) -%}
    md5(row({{ alias }}.quantity, {{ alias }}.cost_usd, {{ alias }}.cost_native, {{ alias }}.currency,
            {{ alias }}.occurred_at, {{ alias }}.client_id, {{ alias }}.agent_id, {{ alias }}.attribution_status,
            {{ alias }}.linked_external_id, {{ alias }}.source_channels)::text)
{%- endmacro %}

{# Whether an existing relation already has a column (a table built by an older version may not). #}
{% macro has_column(relation, column_name) -%}
    {{ return(column_name in (adapter.get_columns_in_relation(relation) | map(attribute='name') | list)) }}
{%- endmacro %}
