{# Stable surrogate key: md5 of the parts joined with ':' (nulls become empty strings). #}
{% macro surrogate_key(parts) -%}
    md5(concat_ws(':', {% for part in parts %}coalesce(({{ part }})::text, ''){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}

{# Phone numbers leave staging only as a salted hash. The salt lives in ops.pii_salt (written from
   BILLING_USAGE_PII_SALT before every build), never in the SQL text. #}
{% macro hash_phone(expression) -%}
    case when {{ expression }} is not null
        then 'ph_' || left(md5((select salt from ops.pii_salt) || ':' || {{ expression }}), 16)
    end
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
