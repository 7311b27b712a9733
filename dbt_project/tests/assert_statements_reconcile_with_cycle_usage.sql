{# Each cycle's statement = its fct_cycle_usage rows + the adjustments that bill into it, per provider x
   metric, for quantity and cost, exactly. An asset check on reporting/rpt_cycle_statements. #}
{{ config(meta={"dagster": {"ref": {"name": "rpt_cycle_statements"}}}) }}

with expected as (

    select cycle_id, provider, metric, sum(quantity) as quantity, sum(cost_usd) as cost_usd,
           sum(adjustment_quantity) as adjustment_quantity, sum(adjustment_cost_usd) as adjustment_cost_usd
    from (
        select cycle_id, provider, metric, quantity, coalesce(cost_usd, 0) as cost_usd,
               0 as adjustment_quantity, 0 as adjustment_cost_usd
        from {{ ref('fct_cycle_usage') }}
        union all
        select bills_into_cycle_id, provider, metric, 0, 0, delta_quantity, delta_cost_usd
        from {{ ref('fct_cycle_adjustments') }}
        where bills_into_cycle_id is not null
    ) as parts
    group by cycle_id, provider, metric

),

stated as (

    select cycle_id, provider, metric, quantity, cost_usd, adjustment_quantity, adjustment_cost_usd, total_cost_usd
    from {{ ref('rpt_cycle_statements') }}

)

select coalesce(expected.cycle_id, stated.cycle_id) as cycle_id,
       coalesce(expected.provider, stated.provider) as provider,
       coalesce(expected.metric, stated.metric) as metric,
       expected.cost_usd + expected.adjustment_cost_usd as expected_total_cost_usd,
       stated.total_cost_usd
from expected
full outer join stated
    on stated.cycle_id = expected.cycle_id and stated.provider = expected.provider and stated.metric = expected.metric
where stated.cycle_id is null or expected.cycle_id is null
   or stated.quantity <> expected.quantity
   or stated.cost_usd <> expected.cost_usd
   or stated.adjustment_quantity <> expected.adjustment_quantity
   or stated.adjustment_cost_usd <> expected.adjustment_cost_usd
   or stated.total_cost_usd <> expected.cost_usd + expected.adjustment_cost_usd
