"""Where a server process spends its CPU during a phase: py-spy's sampled stacks, summed per function."""

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

RATE = 200  # samples a second: enough for a 15 s phase, cheap for the sampled process with --nonblocking


def py_spy() -> str:
    """py-spy from PATH or next to this interpreter (`pip install py-spy` into the venv; not a requirement)."""
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    return found


class Profiler:
    """py-spy recording one process for `seconds`, started at construction, without pausing it (--nonblocking).

    Only the thread holding the GIL is sampled (--gil): a thread waiting for the
    database or for the GIL would otherwise count as busy, and what the figures
    need is where the CPU goes.
    """

    def __init__(self, pid: int, seconds: float) -> None:
        self.output = Path(tempfile.mkstemp(prefix="fanout-profile-", suffix=".txt")[1])
        command = [py_spy(), "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(RATE),
                   "--nonblocking", "--gil", "--function", "--format", "raw", "--output", str(self.output)]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def top(self, lines: int) -> list[str]:
        """The functions with the most samples on top of the stack (self) and anywhere in it (total), as text."""
        _, errors = self.process.communicate(timeout=120)
        stacks = Counter()
        for line in self.output.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack:
                stacks[stack] += int(count)
        self.output.unlink()
        total = sum(stacks.values())
        if not total:
            return [f"no samples ({errors.strip()[-300:]})"]
        own, anywhere = Counter(), Counter()
        for stack, count in stacks.items():
            frames = stack.split(";")[1:]  # the first is the thread
            if frames:
                own[frames[-1]] += count
            for frame in set(frames):
                anywhere[frame] += count
        report = [f"{total} samples at {RATE}/s; self %:"]
        report += [f"{100 * n / total:5.1f}  {frame}" for frame, n in own.most_common(lines)]
        report.append("total % (the function and what it calls):")
        report += [f"{100 * n / total:5.1f}  {frame}" for frame, n in anywhere.most_common(lines)]
        return report
