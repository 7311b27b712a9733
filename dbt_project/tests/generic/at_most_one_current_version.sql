{# A versioned dimension has at most one version in force per key (none once it left the directory). #}
{% test at_most_one_current_version(model, key) %}
    select {{ key }}
    from {{ model }}
    group by {{ key }}
    having count(*) filter (where is_current) > 1
{% endtest %}
