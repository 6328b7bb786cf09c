#!/usr/bin/python3
"""Kills one rank of a running sharded moe-run job and reports how the job ends.

    kill_rank.py --workdir DIR [--ranks N] [--wait S] -- moe-run ARGS...

Starts `mpirun -np N moe-run ARGS --shards N --bench 1000000` (a run of a few seconds at
least: moe-run takes at most 10^6 calls, and the test's tiny layer does them in about 3 s on
the build machines), waits up to S seconds (default 4) until all N ranks run, then half a
second more for them to be past their start, sends SIGKILL to the moe-run
process whose command line is the last one started, and waits up to 60 s for mpirun. Prints
`job ended in T s with status S` (or `job still running after 60 s`), then the launcher's
stderr lines. Exits 0 when the job ended within 30 s with a non-zero status.
"""

import argparse
import os
import signal
import subprocess
import sys
import time


def moe_run_pids(marker):
    """The pids of the moe-run processes whose command line holds `marker`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0].decode(errors="replace")) == "moe-run" and \
                marker.encode() in b" ".join(argv):
            pids.append(int(entry))
    return sorted(pids)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--wait", type=float, default=4)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    # The work directory is in every rank's command line: it tells our ranks apart.
    launcher = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(args.ranks)] + \
        command + ["--shards", str(args.ranks), "--bench", "1000000"]
    job = subprocess.Popen(launcher, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.time() + args.wait
    pids = moe_run_pids(args.workdir)
    while len(pids) < args.ranks and time.time() < deadline and job.poll() is None:
        time.sleep(0.05)
        pids = moe_run_pids(args.workdir)
    time.sleep(0.5)
    pids = moe_run_pids(args.workdir)
    if len(pids) != args.ranks:
        ended = job.poll()
        job.kill()
        print(f"expected {args.ranks} moe-run processes, found {len(pids)}"
              + (f" (the job had already ended with status {ended})" if ended is not None
                 else ""))
        return 1
    os.kill(pids[-1], signal.SIGKILL)
    killed = time.time()
    try:
        _, stderr = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        print("job still running after 60 s")
        return 1
    took = time.time() - killed
    print(f"job ended in {took:.1f} s with status {job.returncode}")
    for line in stderr.splitlines():
        if line.strip():
            print(line)
    return 0 if took <= 30 and job.returncode != 0 else 1


if __name__ == "__main__":
    sys.exit(main())
