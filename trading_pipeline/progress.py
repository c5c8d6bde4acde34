"""One short line per finished step and run on the terminal.

Shell runs keep Dagster's console at INFO (`python_logs` in dagster.yaml): the DEBUG events
(step starts, outputs, materializations) still go to the run's event log, which the UI shows.
This handler, configured there too, prints what a person watching a terminal wants instead:
each step as it finishes, with its time, and how the run ended. TRADING_PROGRESS=off silences
it (`run-sessions` prints one line per session instead).
"""

from __future__ import annotations

import logging
import os
import sys

_SHOWN = ("ASSET_CHECK_EVALUATION", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED")
# (run id, step key) of steps that evaluated a check; Dagster builds handlers per log manager, so
# this lives in the module. A run has a few dozen steps; it is cleared long before it matters.
_check_steps: set[tuple[str, str]] = set()


class StepProgress(logging.Handler):
    """Asset steps as they finish; a check only when it fails (the summary counts the rest).

    Lines go to the terminal as it was when the handler was made (Dagster makes it with the
    run's log manager, before any step). During a step Dagster points the process's stderr at
    the step's log file and a `tail` process copies that file to the terminal; a step's
    success is logged inside that capture, and the tail is stopped when the step ends, so on a
    loaded machine the last step's line could be lost before the tail read it."""

    def __init__(self, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        try:
            sys.stderr.flush()
            self._terminal: int | None = os.dup(sys.stderr.fileno())
        except (OSError, ValueError):  # stderr replaced by an in-memory stream: print to it
            self._terminal = None

    def close(self) -> None:
        if self._terminal is not None:
            os.close(self._terminal)
            self._terminal = None
        super().close()

    def emit(self, record: logging.LogRecord) -> None:
        if os.environ.get("TRADING_PROGRESS", "").lower() == "off":
            return
        # The event Dagster attached to the record (`dagster_meta`, as its handlers receive it).
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None or event.event_type_value not in _SHOWN:
            return
        try:
            line = self._line(event, str(meta.get("run_id")))
        except Exception:  # noqa: BLE001 - a progress line must never fail a run
            return
        if not line:
            return
        if self._terminal is None:
            print(line, file=sys.stderr, flush=True)
        else:
            os.write(self._terminal, f"{line}\n".encode())

    def _line(self, event, run_id: str) -> str | None:
        kind, step = event.event_type_value, event.step_key or "?"
        if kind == "ASSET_CHECK_EVALUATION":
            if len(_check_steps) > 10_000:
                _check_steps.clear()
            _check_steps.add((run_id, step))
            evaluation = event.event_specific_data
            if evaluation.passed:
                return None
            return (f"    check {evaluation.check_name} on {evaluation.asset_key.to_user_string()} FAILED: "
                    f"{(evaluation.description or '').strip()[:160]}")
        if kind == "STEP_SUCCESS" and (run_id, step) in _check_steps:
            return None
        return _line(event, step)


def _line(event, step: str) -> str:
    kind = event.event_type_value
    if kind == "STEP_SUCCESS":
        seconds = event.event_specific_data.duration_ms / 1000
        return f"    {step:<24} ok  {seconds:6.1f} s"
    if kind == "STEP_SKIPPED":
        return f"    {step:<24} skipped (an upstream step or a blocking check failed)"
    error = event.event_specific_data.error
    message = (error.message if error else "failed").strip().splitlines()[0][:200]
    return f"    {step:<24} FAILED: {message}"
