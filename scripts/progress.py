"""Show a long set-up step's progress: read its output on stdin, keep all of it in a log file, and
print a short line now and then, so that nobody wonders whether it hung.

    some-build 2>&1 | python scripts/progress.py --log build.log --label "compiling llama.cpp" --expected 180

A line is printed when the build tool reports a step (``[12/74]``, as ninja and make do: files
compiled out of the total), at most every ``--every`` seconds, and a heartbeat otherwise, each
with the time elapsed and the expected total. With ``--packages``, pip's ``Collecting <package>`` lines are counted.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import sys
import time
from typing import TextIO

STEP = re.compile(r"^\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]")
COLLECTING = re.compile(r"^\s*Collecting (\S+)")


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Reporter:
    """Turns output lines into progress lines; ``now`` is injectable for tests."""

    def __init__(
        self, label: str, expected: float, every: float, out: TextIO, now: float, *, packages: bool = False
    ) -> None:
        self.label = label
        self.count_packages = packages
        self.expected = expected
        self.every = every
        self.out = out
        self.start = now
        self.last_print = now
        self.step: tuple[int, int] | None = None
        self.packages = 0

    def feed(self, line: str, now: float) -> None:
        step = STEP.match(line)
        if step:
            self.step = (int(step.group(1)), int(step.group(2)))
        elif self.count_packages and COLLECTING.match(line):
            self.packages += 1
        if step and now - self.last_print >= self.every:
            self.report(now)

    def tick(self, now: float) -> None:
        if now - self.last_print >= self.every:
            self.report(now)

    def report(self, now: float) -> None:
        elapsed = now - self.start
        parts = [f"  {self.label}:"]
        if self.step is not None:
            n, total = self.step
            parts.append(f"{n}/{total} steps ({100 * n // max(total, 1)}%),")
        elif self.packages:
            parts.append(f"{self.packages} packages so far,")
        parts.append(f"{clock(elapsed)} elapsed")
        if self.step is not None and self.step[0] >= 5:
            n, total = self.step
            parts.append(f"(about {clock(elapsed * (total - n) / n)} left)")
        elif self.expected > 0 and elapsed <= self.expected:
            parts.append(f"of about {clock(self.expected)}")
        elif self.expected > 0:
            parts.append(f"(expected about {clock(self.expected)}: is the machine busy?)")
        self.out.write(" ".join(parts) + "\n")
        self.out.flush()
        self.last_print = now


def run(stream: TextIO, log: TextIO, reporter: Reporter, heartbeat: float) -> None:
    fd = stream.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([fd], [], [], heartbeat)
        now = time.monotonic()
        if not ready:
            reporter.tick(now)
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace").rstrip("\r")
            log.write(line + "\n")
            reporter.feed(line, now)
        log.flush()
        reporter.tick(now)
    if buffer:
        log.write(buffer.decode(errors="replace") + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", required=True, help="file that receives every line")
    ap.add_argument("--label", required=True, help="what is being done, e.g. 'compiling llama.cpp'")
    ap.add_argument("--expected", type=float, default=0.0, help="expected seconds in all (0: unknown)")
    ap.add_argument("--every", type=float, default=15.0, help="seconds between two progress lines")
    ap.add_argument("--packages", action="store_true", help="count pip's 'Collecting' lines")
    args = ap.parse_args()
    now = time.monotonic()
    reporter = Reporter(args.label, args.expected, args.every, sys.stdout, now, packages=args.packages)
    with open(args.log, "w", encoding="utf-8") as log:
        run(sys.stdin, log, reporter, heartbeat=max(0.5, min(args.every, 5.0)))


if __name__ == "__main__":
    main()
