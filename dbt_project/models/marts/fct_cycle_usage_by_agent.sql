{# Billing cycle x client x agent x provider x metric; frozen at close like fct_cycle_usage. #}
{{ frozen_cycle_usage(['agent_id']) }}
