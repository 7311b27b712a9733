"""A command's runs write their full output (Dagster's event stream, dlt progress, dbt) to a log file;
the terminal keeps only the command's own short lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from billing_usage.settings import get_settings


def new_log_path(command: str) -> Path:
    folder = get_settings().local_dir / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{command}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}.log"


@contextmanager
def output_to(path: Path) -> Iterator[Callable[[str], None]]:
    """Redirect this process's stdout and stderr (file descriptors 1 and 2, so child processes
    too) to `path` for the block; yields `say`, which still writes a line to the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)

    def say(line: str) -> None:
        os.write(saved[0], (line + "\n").encode())

    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield say
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])

