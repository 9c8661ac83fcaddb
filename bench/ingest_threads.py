"""Where a load's CPU goes: `corpus ingest` into a fresh SQLite database, CPU by thread.

    python -m bench.ingest_threads --rows 200000 [--corpus synth|topics]

Loads a seeded file (`synth`: app.synth's ~3.3 KB articles, as bench.ingest makes them;
`topics`: bench.semantic's ~0.9 KB topic articles) with the real command and the configured
embedder (`CORPUS_EMBEDDER=none` to leave search by meaning out), and reads every thread
of the command's process tree from /proc every half second. Prints the wall time, the
tree's CPU, and each kind of thread's last CPU seconds: the loader's own thread, tantivy's
indexing and merging threads, and the reading and embedding processes. On two cores a
load is bound by its CPU, so this says what would make it faster; the CPU of threads that
end between two looks is lost, so the total may fall short of the tree's by a little.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.db import migrate
from bench.ingest import OUT
from bench.ingest import corpus_file as synth_file
from bench.ingest_memory import tree
from bench.semantic import corpus_file as topics_file

CORPUS = str(Path(sys.executable).with_name("corpus"))
LOOK_S = 0.5
TICK = os.sysconf("SC_CLK_TCK")


def kind(root: int, pid: int, thread: str) -> str:
    """What a thread does: the loader's process's threads by their names, a child process
    by how it started (a reader is forked from the loader, the embedder spawned)."""
    if pid == root:
        if thread.startswith(("thrd-tantivy-in", "thread-tantivy")):
            return "tantivy indexing threads"
        if thread.startswith("merge_thread"):
            return "tantivy merging threads"
        return f"loader ({thread})" if thread != "corpus" else "loader (main thread)"
    command = Path(f"/proc/{pid}/cmdline").read_bytes()
    return "embedding process" if b"multiprocessing.spawn" in command else "reading process"


def cpu_by_thread(root: int, seen: dict[tuple[int, int], tuple[str, float]]) -> None:
    """Record every thread's CPU seconds so far (user + system), keyed by (pid, tid)."""
    for pid in tree(root):
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            for task in tasks:
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat.rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / TICK
                seen[(pid, int(task.name))] = (kind(root, pid, name), seconds)
        except (FileNotFoundError, ProcessLookupError):  # ended while we looked
            continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--corpus", choices=("synth", "topics"), default="synth")
    args = parser.parse_args()
    data = synth_file(args.rows) if args.corpus == "synth" else topics_file(args.rows)
    embedder = os.environ.get("CORPUS_EMBEDDER", "wordllama (the default)")
    print(f"# {data.name}, CORPUS_EMBEDDER={embedder}, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="threads-", dir=OUT) as tmp:
        url = f"sqlite:///{tmp}/corpus.db"
        migrate(url)
        command = [CORPUS, "ingest", str(data), "--database-url", url, "--quiet"]
        print("$ " + " ".join(command), flush=True)
        seen: dict[tuple[int, int], tuple[str, float]] = {}
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        while process.poll() is None:
            cpu_by_thread(process.pid, seen)
            time.sleep(LOOK_S)
        wall = time.perf_counter() - started
    if process.returncode:
        sys.exit(f"corpus ingest failed ({process.returncode})")
    by_kind: dict[str, float] = {}
    for name, seconds in seen.values():
        by_kind[name] = by_kind.get(name, 0.0) + seconds
    total = sum(by_kind.values())
    print(f"wall {wall:.1f} s, CPU {total:.1f} s ({total / wall:.2f} cores)")
    for name, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"{seconds:8.1f} s  {seconds / total:6.1%}  {name}")
    print(f"# load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
