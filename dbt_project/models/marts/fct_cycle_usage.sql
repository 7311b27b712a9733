{# Billing cycle x client x provider x metric. Closed rows are frozen: stored once, never recomputed;
   later changes to their events go to fct_cycle_adjustments. #}
{{ frozen_cycle_usage() }}
