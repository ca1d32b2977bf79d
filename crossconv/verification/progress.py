"""The progress line on stderr: cases done, the kind of case and tier running now."""

from __future__ import annotations

import sys
import time


class Progress:
    """Rewrites one stderr line per case (only on a terminal, unless ``enabled``), at most
    ten times a second."""

    def __init__(self, examples: int, enabled: bool | None = None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.examples = examples
        self.last = 0.0
        self.width = 0

    def update(self, report, draw, shrinking: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        from .report import stress_of

        kinds = report.features.kinds
        done = sum(kinds.values())
        phase = ("shrinking a failure" if shrinking else
                 f"{draw.kind} {draw.name[:40]!r}" if draw.name else draw.kind)
        text = (f"verify: {done} cases done ({kinds['drawn']}/{self.examples} drawn); now: {phase}, "
                f"{draw.dtype}, tier {stress_of(draw.case)}")
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
