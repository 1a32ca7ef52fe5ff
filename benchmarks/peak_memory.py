"""Peak resident memory of the running process (Linux /proc), for the benchmarks' fresh subprocesses."""

from __future__ import annotations


def status(key: str) -> int:
    """Bytes of one /proc/self/status field, e.g. "VmRSS:" or "VmHWM:"."""
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> tuple[int, bool]:
    """Reset VmHWM to the current RSS (Linux >= 4.0): (RSS in bytes, whether the reset worked).

    Without the reset the peak read later also holds whatever this process used before.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    return status("VmRSS:"), reset
