"""The code location for a Kubernetes cluster: the project's definitions, with every step of every job in a
Kubernetes Job of its own (dagster-k8s's k8s_job_executor) instead of a subprocess of the run worker.

The user-code image serves it with `dagster api grpc -f deploy/k8s/definitions.py -p 3030`; the instance is
deploy/k8s/dagster.yaml (runs launched as Kubernetes Jobs by the K8sRunLauncher). It needs dagster-k8s
(`pip install -e ".[k8s]"`); dagster_project.definitions, what every other command loads, never imports it.
Pools, the run queue and the advisory locks work as on one machine: the steps claim their pool slots in the
instance's PostgreSQL, and take their locks in the warehouse.
"""

from dagster import Definitions
from dagster_k8s import k8s_job_executor

from dagster_project.definitions import defs as single_machine_defs

# A Secret holding the project's settings: BILLING_USAGE_DATABASE_URL (with ?sslmode=verify-full),
# BILLING_USAGE_PII_SALT, BILLING_USAGE_PROVIDERS=live and the SOURCES__* credentials.
SETTINGS_SECRET = "billing-usage-settings"

EXECUTOR_CONFIG = {
    "env_secrets": [SETTINGS_SECRET],
    "max_concurrent": 4,  # steps of one run at once; the pools still allow one per dlt pipeline and one dbt build
    "step_k8s_config": {"container_config": {"resources": {
        "requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}}},
    # the dbt build: dbt's own threads (profiles.yml) and the largest memory of any step
    "per_step_k8s_config": {"billing_dbt_models": {"container_config": {"resources": {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}}}},
}
cluster_executor = k8s_job_executor.configured(EXECUTOR_CONFIG, name="billing_usage_k8s")

# everything of the single-machine definitions but their executor (multiprocess, forked steps)
defs = Definitions(assets=single_machine_defs.assets, asset_checks=single_machine_defs.asset_checks,
                   jobs=single_machine_defs.jobs, schedules=single_machine_defs.schedules,
                   sensors=single_machine_defs.sensors, resources=single_machine_defs.resources,
                   loggers=single_machine_defs.loggers, executor=cluster_executor)
