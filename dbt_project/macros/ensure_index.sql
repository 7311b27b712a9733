{# A post-hook creating an index on `relation` over `columns` (a name or a list) unless one exists: existing
   tables get it on their next build (a config index only comes with a new table), and a full refresh's new
   table too (the check is on the columns and the predicate, not on a name the old table still holds).
   `where`: a partial index's predicate, as PostgreSQL prints it back (pg_get_expr). The name is PostgreSQL's. #}
{% macro ensure_index(relation, columns, where=none) %}
{%- set columns = [columns] if columns is string else columns %}
do $$
begin
    if not exists (
        select 1 from pg_index as index
        where index.indrelid = '{{ relation.include(database=false) }}'::regclass
          and array(select attribute.attname::text
                    from unnest(index.indkey::int2[]) with ordinality as key(attnum, position)
                    inner join pg_attribute as attribute
                        on attribute.attrelid = index.indrelid and attribute.attnum = key.attnum
                    order by key.position) = array['{{ columns | join("', '") }}']
          and pg_get_expr(index.indpred, index.indrelid) is not distinct from {{ "$pred$" ~ where ~ "$pred$" if where else "null" }}
    ) then
        create index on {{ relation.include(database=false) }} ({{ columns | join(', ') }}){% if where %} where {{ where }}{% endif %};
    end if;
end
$$
{% endmacro %}
