#!/usr/bin/env python3
"""What the slow State calls of one shim waited on (hand analysis, not run by make bench).

  perf sched record -k CLOCK_MONOTONIC -o sched.data -- \\
      build/bench/bin/ttrpc-state-bench state -t -b 100 -s 1 5000 50 ADDR_A ID_A ADDR_B ID_B > calls.txt
  perf sched timehist -i sched.data -w > timehist.txt
  bench/sched-overlap.py timehist.txt calls.txt TARGET_INDEX [THRESHOLD_NS]

For every call of target TARGET_INDEX slower than THRESHOLD_NS (default 30000), sums the
CPU time each task ran on each CPU inside the call's interval, so the table says which
tasks held the CPUs while the shim's call waited."""
import bisect
import collections
import sys


def runs_of(timehist):
    """(start, end, cpu, task) of every run interval in `perf sched timehist` output."""
    runs = []
    for line in open(timehist):
        f = line.split()
        if len(f) < 6 or not f[0][0].isdigit() or "awakened" in line:
            continue
        try:
            end, cpu, task, run_ms = float(f[0]), f[1], f[2], float(f[-1])
        except ValueError:
            continue
        runs.append((end - run_ms / 1000.0, end, cpu, task))
    runs.sort()
    return runs


def slow_calls(calls, target, threshold):
    total, slow = 0, []
    for line in open(calls):
        f = line.split()
        if len(f) < 3 or int(f[0]) != target:
            continue
        total += 1
        if int(f[1]) > threshold:
            slow.append((int(f[2]) / 1e9, int(f[1]) / 1e9))
    return total, slow


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    runs = runs_of(sys.argv[1])
    starts = [r[0] for r in runs]
    threshold = int(sys.argv[4]) if len(sys.argv) > 4 else 30000
    total, slow = slow_calls(sys.argv[2], int(sys.argv[3]), threshold)
    busy, hits = collections.Counter(), collections.Counter()
    for begin, length in slow:
        end = begin + length
        seen = collections.Counter()
        i = bisect.bisect_left(starts, begin - 0.05)
        while i < len(runs) and runs[i][0] < end:
            s, e, cpu, task = runs[i]
            overlap = min(e, end) - max(s, begin)
            if overlap > 0:
                seen[(cpu, task)] += overlap * 1e6
            i += 1
        for key, us in seen.items():
            busy[key] += us
            hits[key] += 1
    print(f"{len(slow)} of {total} calls slower than {threshold / 1000:.0f} us, "
          f"{sum(l for _, l in slow) * 1e6:.0f} us in all")
    print("cpu    task                                   us inside slow calls  (slow calls)")
    for (cpu, task), us in busy.most_common(25):
        print(f"{cpu} {task:40s} {us:10.0f}  ({hits[(cpu, task)]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
