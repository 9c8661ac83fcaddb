"""Peak memory of `corpus ingest` into SQLite, for the whole process tree, at several sizes.

    python -m bench.ingest_memory --rows 100000,400000

Loads each seeded file (app.synth, cached under bench/out/ as bench.ingest makes them) into
a fresh migrated SQLite database with the real command, and samples every process of its
tree (the command and any reader processes) from /proc/PID/smaps_rollup every few ms. PSS
counts a page shared by N processes as 1/N in each, so the sum over the tree counts shared
pages once: the tree's real footprint, where summed RSS counts the copy-on-write pages
each reader shares with the parent several times. Anonymous is the tree's allocated
memory alone: PSS also counts the index files a merge maps, page cache the kernel can drop.
Prints, per size, the data phase (until the deferred index build starts), the whole run,
the peak tree PSS, anonymous memory and summed RSS, and
each peak against the smallest size's: flat memory means ratios near 1.00x. CPU seconds
(the tree's user + system time, workers included) say more than wall seconds when other
work shares the cores.
"""

import argparse
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.db import migrate
from bench.ingest import INDEX_PHASES, OUT, corpus_file

SAMPLE_S = 0.01


def tree(pid: int) -> list[int]:
    """`pid` and every process below it, as /proc lists them now."""
    found = [pid]
    for parent in found:
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():
                found.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:  # exited while we looked
            continue
    return found


def footprint(pids: list[int]) -> tuple[int, int, int]:
    """(PSS, RSS, anonymous) in kB summed over `pids`; processes that are gone count
    nothing. Anonymous pages are what the processes allocated; PSS also counts the pages of
    files they map (tantivy maps its segments: a merge reads hundreds of MB of them, page
    cache the kernel may drop, counted in the PSS of the process that merges)."""
    pss = rss = anon = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in text.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                anon += int(line.split()[1])
    return pss, rss, anon


class PeakSampler(threading.Thread):
    """Samples the tree under `pid` until stopped; keeps the peaks and the most processes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_pss_kb = self.peak_rss_kb = self.peak_anon_kb = self.processes = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            pids = tree(self.pid)
            pss, rss, anon = footprint(pids)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.peak_anon_kb = max(self.peak_anon_kb, anon)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.processes = max(self.processes, len(pids))
            self.stopped.wait(SAMPLE_S)


def cpu_s(pid: int) -> float:
    """User + system seconds of `pid` and of the children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    rows: int
    data_s: float
    data_cpu_s: float
    total_s: float
    total_cpu_s: float
    peak_pss_mb: float
    peak_rss_mb: float
    peak_anon_mb: float
    processes: int


def measure(path: Path, rows: int, work: Path) -> Run:
    url = f"sqlite:///{work / f'corpus-{rows}.db'}"
    migrate(url)
    command = [sys.executable, "-c", "from app.cli import main; main()", "ingest"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--database-url", url, str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = PeakSampler(proc.pid)
    sampler.start()
    assert proc.stderr is not None
    data_at = data_cpu = None
    for line in proc.stderr:
        if data_at is None and any(phase in line for phase in INDEX_PHASES):
            data_at = time.perf_counter() - started
            data_cpu = cpu_s(proc.pid)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    total = time.perf_counter() - started
    total_cpu = usage.ru_utime + usage.ru_stime
    sampler.stopped.set()
    sampler.join()
    if code != 0:
        raise SystemExit(f"corpus ingest exited {code}")
    return Run(
        rows,
        data_at or total,
        data_cpu or total_cpu,
        total,
        total_cpu,
        sampler.peak_pss_kb / 1024,
        sampler.peak_rss_kb / 1024,
        sampler.peak_anon_kb / 1024,
        sampler.processes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,400000", help="comma-separated sizes")
    options = parser.parse_args()
    sizes = [int(size) for size in options.rows.split(",")]
    print(f"# python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, ", end="")
    print(f"cpus {len(os.sched_getaffinity(0))}, {platform.machine()}")
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=OUT) as tmp:
        for rows in sizes:
            path = corpus_file(rows)
            runs.append(measure(path, rows, Path(tmp)))
            Path(tmp, f"corpus-{rows}.db").unlink()
    base = runs[0]
    print(
        f"{'rows':>9} {'data s':>7} {'CPU s':>6} {'rec/s':>7} {'total s':>8} {'CPU s':>6} "
        f"{'procs':>5} "
        f"{'tree PSS MB':>11} {'vs first':>8} {'anon MB':>7} {'vs first':>8} "
        f"{'sum RSS MB':>10} {'vs first':>8}"
    )
    for run in runs:
        print(
            f"{run.rows:>9} {run.data_s:>7.1f} {run.data_cpu_s:>6.1f} "
            f"{run.rows / run.data_s:>7.0f} "
            f"{run.total_s:>8.1f} {run.total_cpu_s:>6.1f} "
            f"{run.processes:>5} {run.peak_pss_mb:>11.0f} "
            f"{run.peak_pss_mb / base.peak_pss_mb:>7.2f}x {run.peak_anon_mb:>7.0f} "
            f"{run.peak_anon_mb / base.peak_anon_mb:>7.2f}x {run.peak_rss_mb:>10.0f} "
            f"{run.peak_rss_mb / base.peak_rss_mb:>7.2f}x"
        )


if __name__ == "__main__":
    main()
