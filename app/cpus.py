"""How many CPUs this process may use: one definition for the loader's readers and
embedding processes and for the threads a query's vector scan is split across."""

import os


def cores() -> int:
    """The CPUs this process may run on: its affinity, which `taskset` and container
    cpusets narrow (os.cpu_count() counts the host's)."""
    return len(os.sched_getaffinity(0))
