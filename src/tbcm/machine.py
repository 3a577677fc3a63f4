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


def device_name(device) -> str:
    """A torch device in words for a benchmark's header: the GPU's name and memory, or the CPU's model and the
    threads torch uses, with torch's (and CUDA's) version."""
    import platform

    import torch

    device = torch.device(device)
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"{cpu_model(platform.processor() or 'CPU')}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
