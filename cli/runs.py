"""Collection then the model build, run in this process (make demo, make backfill, tests) the way the
schedule and the build-after-collection sensor run them in production, with a summary of what failed.

In-process runs carry their host and process id, so a run whose process was killed (kill -9) is
marked failed by the next command instead of staying STARTED forever.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from dagster import AssetCheckSeverity, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.execution.execute_in_process_result import ExecuteInProcessResult
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

HOST_TAG, PID_TAG = "billing_usage/host", "billing_usage/pid"


@dataclass
class PipelineRun:
    collect: ExecuteInProcessResult
    build: ExecuteInProcessResult

    @property
    def results(self) -> tuple[ExecuteInProcessResult, ExecuteInProcessResult]:
        return self.collect, self.build

    @property
    def success(self) -> bool:
        return all(result.success for result in self.results) and not self.skipped()

    def get_asset_materialization_events(self) -> list:
        return [event for result in self.results for event in result.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list:
        return [evaluation for result in self.results for evaluation in result.get_asset_check_evaluations()]

    def failed_steps(self) -> dict[str, str]:
        """Step key -> the error it failed with, in one line."""
        failures = {}
        for result in self.results:
            for event in result.get_step_failure_events():
                data = event.step_failure_data
                message = data.user_failure_data.description if data.user_failure_data else None
                failures[event.step_key] = (message or (data.error.message if data.error else "failed")).strip()
        return failures

    def skipped(self) -> dict[str, str]:
        """Step -> why it did not do its work (another run held its lock too long)."""
        return {step: reason for result in self.results for step, reason in _skipped(result).items()}

    def failed_checks(self) -> list[str]:
        return [f"{e.asset_key.to_user_string()}:{e.check_name} ({e.severity.value})"
                for e in self.get_asset_check_evaluations() if not e.passed]

    def summary_lines(self) -> list[str]:
        lines = [f"FAILED  {step}: {message.splitlines()[0]}" for step, message in self.failed_steps().items()]
        skipped = self.skipped()
        lines += [f"SKIPPED {reason}" for reason in sorted(set(skipped.values()))]
        lines += [f"CHECK   {check}" for check in self.failed_checks()]
        return lines

    def has_errors(self) -> bool:
        return bool(self.failed_steps()) or any(
            not e.passed and e.severity == AssetCheckSeverity.ERROR for e in self.get_asset_check_evaluations())


def _process_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _skipped(result: ExecuteInProcessResult) -> dict[str, str]:
    """Step -> why it did not do its work (another run held its lock too long)."""
    return {event.step_key: str(event.asset_observation_data.asset_observation.metadata["skipped"].value)
            for event in result.all_events
            if event.is_asset_observation and "skipped" in event.asset_observation_data.asset_observation.metadata}


def _outcomes(result: ExecuteInProcessResult) -> str:
    failed = {event.step_key for event in result.get_step_failure_events()}
    skipped = _skipped(result)
    started = [event.step_key for event in result.all_events if event.event_type_value == "STEP_START"]
    return ", ".join(f"{step} {'FAILED' if step in failed else 'skipped' if step in skipped else 'ok'}"
                     for step in started if not step.endswith("collection_fresh"))


def run_usage_pipeline(instance: DagsterInstance, partition_key: str | None = None,
                       partition_range: tuple[str, str] | None = None,
                       say: Callable[[str], None] = lambda line: None) -> PipelineRun:
    """collect_usage, then build_models over the same partitions, whatever collection's outcome.
    Without a partition: today's, which follows the collectors' cursors. `say` gets progress lines."""
    from dagster_project.definitions import defs
    from dagster_project.partitions import today_partition_key

    options: dict = {"instance": instance, "raise_on_error": False}
    if partition_range:
        options["tags"] = {**_process_tags(), ASSET_PARTITION_RANGE_START_TAG: partition_range[0],
                           ASSET_PARTITION_RANGE_END_TAG: partition_range[1]}
    else:
        options |= {"tags": _process_tags(), "partition_key": partition_key or today_partition_key()}
    results = []
    for job in ("collect_usage", "build_models"):
        started = time.monotonic()
        say(f"{job}: running")
        results.append(defs.resolve_job_def(job).execute_in_process(**options))
        say(f"{job}: {_outcomes(results[-1])} ({time.monotonic() - started:.1f} s)")
    return PipelineRun(*results)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the in-process runs of this host whose process is gone; returns their ids."""
    host = socket.gethostname()
    abandoned = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                                    tags={HOST_TAG: host})):
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid and pid != os.getpid() and not _alive(pid):
            instance.report_run_failed(run, f"its process {pid} on {host} ended without finishing the run "
                                            "(killed?); marked failed by the next command")
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            abandoned.append(run.run_id)
    return abandoned
