"""CloudWatch's embedded-metric-format extraction, locally: EMF lines on stdout become local metrics.

In Lambda, the handler's Powertools metrics are JSON lines in its log stream that CloudWatch turns
into metrics. In-process they would be printed on the terminal; :class:`EmfCapture` takes them off
stdout and records them in :class:`~filepipe.local.metrics.LocalMetrics` instead, so alarms on the
handler's own metrics can be evaluated and the terminal shows the pipeline, not metric blobs.
"""

from __future__ import annotations

import json
import threading
from typing import Any, TextIO

from filepipe.local.metrics import LocalMetrics


def record_emf(line: str, metrics: LocalMetrics) -> bool:
    """Record the metrics of one EMF document; ``False`` if the line is not one."""
    stripped = line.strip()
    if not (stripped.startswith("{") and '"_aws"' in stripped):
        return False
    try:
        document = json.loads(stripped)
    except ValueError:
        return False
    meta = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(meta, dict):
        return False
    for directive in meta.get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace", ""))
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = {str(name): str(document.get(name, "")) for name in dimension_set}
            for metric in directive.get("Metrics") or []:
                name = str(metric.get("Name", ""))
                values: Any = document.get(name)
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, int | float):
                        metrics.put(namespace, name, dimensions, float(value))
    return True


class EmfCapture:
    """A stdout stand-in: EMF lines go to the metrics; other lines are written through (or dropped)."""

    def __init__(self, target: TextIO, metrics: LocalMetrics, *, echo: bool = True) -> None:
        self._target = target
        self._metrics = metrics
        self._echo = echo
        self._pending = threading.local()
        self._write_lock = threading.Lock()

    def write(self, text: str) -> int:
        # print() writes the text and the newline separately: buffer per thread until a full line.
        buffered: str = getattr(self._pending, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._pending.text = rest
        for line in lines:
            if not record_emf(line, self._metrics) and self._echo:
                with self._write_lock:
                    self._target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        with self._write_lock:
            self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", "utf-8")

    def fileno(self) -> int:
        return self._target.fileno()
