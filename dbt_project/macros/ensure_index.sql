{# A post-hook creating a one-column index on `relation` unless one exists: existing tables get it on their next
   build (a config index only comes with a new table), and a full refresh's new table too (the check is on the
   column and the predicate, not on a name the old table still holds). `where`: a partial index's predicate,
   as PostgreSQL prints it back (pg_get_expr). The name is PostgreSQL's. #}
{% macro ensure_index(relation, column, where=none) %}
do $$
begin
    if not exists (
        select 1 from pg_index as index
        inner join pg_attribute as attribute
            on attribute.attrelid = index.indrelid and attribute.attnum = index.indkey[0]
        where index.indrelid = '{{ relation.include(database=false) }}'::regclass
          and index.indnatts = 1 and attribute.attname = '{{ column }}'
          and pg_get_expr(index.indpred, index.indrelid) is not distinct from {{ "$pred$" ~ where ~ "$pred$" if where else "null" }}
    ) then
        create index on {{ relation.include(database=false) }} ({{ column }}){% if where %} where {{ where }}{% endif %};
    end if;
end
$$
{% endmacro %}
