"""Run every benchmark and write bench/results.md: `make bench` (quick) or BENCH=full.

Each script prints a final line of figures; this collects those lines (and each
script's full output) with the machine and the date, so results can be compared
across changes.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = {
    "cold_poll.py": ["--feeds", "200", "--runs", "3"],
    "eval_dedup.py --generate": ["--generate", "2000"],
    "eval_dedup.py labelled": [str(HERE.parent / "tests" / "data" / "labelled.json")],
    # The real dev set (../shared); the script says so and exits 2 when it is absent.
    "eval_dedup.py dev": [
        str(HERE.parents[1] / "shared" / "corpus" / "syndication-dev" / "labels.json")
    ],
    "search.py": ["--items", "20000", "--queries", "100"],
    "dedup_stage.py": ["--items", "20000"],
    "restart.py": ["--items", "200000"],
    "reuters.py": ["--sample", "50"],
    "fit_verdict.py": [],
    "tickers.py": [],
    # Issue 18's daemon capacity: 15-minute intervals compressed 10 times.
    "capacity.py 1000": ["--feeds", "1000", "--time-factor", "10"],
    "capacity.py 10000": ["--feeds", "10000", "--time-factor", "10"],
}
FULL = {
    **QUICK,
    "cold_poll.py": ["--feeds", "1000", "--runs", "3"],
    "eval_dedup.py --generate": ["--generate", "20000"],
    "search.py": ["--items", "1000000", "--queries", "200"],
    "dedup_stage.py": ["--items", "200000"],
    "restart.py": ["--items", "1000000"],
    "capacity.py 50000": ["--feeds", "50000", "--time-factor", "10"],
}


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.node()}: {platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
    )


def main() -> int:
    mode = os.environ.get("BENCH") or "quick"
    plan = FULL if mode == "full" else QUICK
    sections = []
    summary = []
    for name, args in plan.items():
        script = HERE / name.split()[0]
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        output = result.stdout.strip()
        final = output.splitlines()[-1] if output else "(no output)"
        if result.returncode != 0:
            final = f"FAILED (exit {result.returncode}): {result.stderr.strip().splitlines()[-1:]}"
        print(f"{name}: {final}", flush=True)
        shown = " ".join(Path(a).name if a.startswith("/") else a for a in args)
        summary.append(f"| `{name.split()[0]} {shown}` | {seconds:.0f} s | `{final}` |")
        sections.append(f"### {name}\n\n```\n{output[-6000:]}\n```\n")
    text = "\n".join(
        [
            "# Benchmark results",
            "",
            f"Written by `make bench` (BENCH={mode}) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
            f"Machine: {machine()}.",
            "",
            "| script | wall time | final line |",
            "| --- | --- | --- |",
            *summary,
            "",
            "## Full output",
            "",
            *sections,
        ]
    )
    (HERE / "results.md").write_text(text + "\n", encoding="utf-8")
    print(f"wrote {HERE / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
