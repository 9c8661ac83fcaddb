"""Progress of a load on stderr: a bar redrawn in place on a terminal, plain lines otherwise.

It reads the running Summary after each batch and never touches the stages. On a terminal
it redraws at most a few times a second; into a file or pipe it writes one line every
`interval_s`, so logs stay readable. Messages (rejects) go through `message`, which clears
the bar first so the two never garble each other.
"""

import threading
import time
from typing import Protocol, TextIO

BAR_WIDTH = 24
TTY_REFRESH_S = 0.2
PLAIN_INTERVAL_S = 10.0


class Tally(Protocol):
    """What progress needs of a running Summary."""

    @property
    def done(self) -> int: ...

    @property
    def bytes_read(self) -> int: ...

    @property
    def bytes_total(self) -> int | None: ...

    @property
    def elapsed_s(self) -> float: ...


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Renders a Tally; thread-safe, since rejects are reported from the reading thread."""

    def __init__(self, stream: TextIO, *, tty: bool, interval_s: float = PLAIN_INTERVAL_S):
        self.stream = stream
        self.tty = tty
        self.interval_s = TTY_REFRESH_S if tty else interval_s
        self._last = time.perf_counter()
        self._shown = ""
        self._lock = threading.Lock()

    def update(self, tally: Tally, *, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        with self._lock:
            if self.tty:
                self._shown = self._bar(tally)
                self.stream.write("\r" + self._shown + "\x1b[K")
            else:
                self.stream.write(self._line(tally) + "\n")
            self.stream.flush()

    def phase(self, text: str) -> None:
        """A step after the records (e.g. building the search index): always shown."""
        self.message(text)

    def message(self, text: str) -> None:
        with self._lock:
            if self.tty and self._shown:
                self.stream.write("\r\x1b[K" + text + "\n\r" + self._shown + "\x1b[K")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self.tty and self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self._shown = ""

    @staticmethod
    def _figures(tally: Tally) -> tuple[float, float | None, float | None]:
        elapsed = max(tally.elapsed_s, 1e-9)
        rate = tally.done / elapsed
        if not tally.bytes_total or not tally.bytes_read:
            return rate, None, None
        fraction = min(tally.bytes_read / tally.bytes_total, 0.999)
        return rate, fraction, elapsed * (1 - fraction) / fraction

    def _bar(self, tally: Tally) -> str:
        rate, fraction, eta = self._figures(tally)
        text = f"{tally.done:,} records  {rate:,.0f} records/s"
        if fraction is None or eta is None:
            return text
        filled = int(fraction * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        return f"[{bar}] {fraction:4.0%}  {text}  ETA {_duration(eta)}"

    def _line(self, tally: Tally) -> str:
        rate, fraction, eta = self._figures(tally)
        text = f"progress: {tally.done} records, {rate:.0f} records/s"
        if fraction is None or eta is None:
            return text
        return f"{text}, {fraction:.0%}, ETA {_duration(eta)}"
