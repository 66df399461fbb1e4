#!/usr/bin/env python3
"""How much of each thread's stack is resident, added up by the start of thread names.

Chapter 09, "Try it":

    python3 walkthrough/scripts/stacks.py PID

A thread blocked in a system call shows its stack pointer in /proc/PID/task/TID/syscall
(the last field but one); the mapping of /proc/PID/smaps that holds that address is the
thread's stack, and its `Rss:` line says how much of it is in memory. Threads are grouped
by the first three characters of their name (`rx:`, `tx:`, `acc` for `acceptor`, `mqt`
for the main thread, `mqttd`), and each group's count and total are printed. A thread
that is running, not blocked, has no stack pointer there and is left out (counted as
`running`): on an idle broker there is none.
"""
import os
import re
import sys

pid = sys.argv[1]

# Every mapping (start, end), and its resident size in KiB.
maps = []
rss = {}
for line in open(f"/proc/{pid}/smaps"):
    if m := re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line):
        maps.append((int(m[1], 16), int(m[2], 16)))
    elif line.startswith("Rss:"):
        rss[maps[-1]] = int(line.split()[1])

total = {}  # name prefix -> (threads, KiB)
running = 0
for tid in os.listdir(f"/proc/{pid}/task"):
    name = open(f"/proc/{pid}/task/{tid}/comm").read()[:3]
    fields = open(f"/proc/{pid}/task/{tid}/syscall").read().split()
    if len(fields) < 3:  # "running": no stack pointer to read
        running += 1
        continue
    stack_pointer = int(fields[-2], 16)
    kib = next(rss[m] for m in maps if m[0] <= stack_pointer < m[1])
    threads, sum_kib = total.get(name, (0, 0))
    total[name] = (threads + 1, sum_kib + kib)

for name, (threads, kib) in sorted(total.items()):
    print(f"{name} {threads:5} threads, stacks {kib:6} KiB resident")
if running:
    print(f"running {running} (no stack pointer to read)")
