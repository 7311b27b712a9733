{# Events before this instant may have been purged: identities are checked from here on. #}
{% macro retention_horizon() -%}
    (select coalesce(max(cutoff), '-infinity'::timestamptz) from ops.retention_purges)
{%- endmacro %}
