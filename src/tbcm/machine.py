"""What machine a measurement ran on: benchmarks name it next to every number they print."""

from __future__ import annotations

from pathlib import Path


def cpu_model(default: str = "unknown CPU") -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), or `default` where that cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default
