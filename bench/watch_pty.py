#!/usr/bin/env python3
"""Bytes written to the terminal and CPU used by `haul watch`, through a real pty.

    python3 bench/watch_pty.py --haul target/release/haul --db DB --seconds 60 --label idle \
        [--warmup 3] [--cols 120] [--rows 40] [--tsv out.tsv] [-- extra watch args]

Starts `haul --db DB watch` on a pty of COLS x ROWS (TERM=xterm-256color), answers the cursor
position and device attribute queries a terminal would, lets it draw for --warmup seconds
(not counted: the first frame), then counts every byte it writes for --seconds and the CPU
(user + sys from /proc/PID/stat) it uses in that window. Ends it with `q`, then SIGTERM.
Appends one row to --tsv: label, seconds, bytes, bytes/s, cpu_s, cpu %, frames (synchronized-
update or clear sequences seen), exit status.
"""
import argparse
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

CLK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--haul", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--config")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--label", default="idle")
    ap.add_argument("--tsv")
    ap.add_argument("--dump", help="write everything the watcher printed here")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()

    argv = [a.haul]
    if a.config:
        argv += ["--config", a.config]
    argv += ["--db", a.db, "watch"] + a.extra
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.environ.pop("NO_COLOR", None)
        os.execv(a.haul, argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", a.rows, a.cols, 0, 0))
    os.kill(pid, signal.SIGWINCH)
    dump = open(a.dump, "wb") if a.dump else None
    t_start = time.monotonic()
    t_measure = t_start + a.warmup
    t_end = t_measure + a.seconds
    counted = 0
    total = 0
    frames = 0
    cpu0 = None
    exited = None
    pending = b""
    while True:
        now = time.monotonic()
        if cpu0 is None and now >= t_measure:
            cpu0 = cpu_ticks(pid)
            counted = 0
            frames = 0
        if now >= t_end:
            break
        r, _, _ = select.select([fd], [], [], min(0.2, max(0.0, t_end - now)))
        if fd in r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                break
            total += len(data)
            if dump:
                dump.write(data)
            if cpu0 is not None:
                counted += len(data)
            buf = pending + data
            frames += buf.count(b"\x1b[?2026h") or 0
            # answer queries so crossterm does not wait for a terminal that never replies
            if b"\x1b[6n" in buf:
                os.write(fd, b"\x1b[1;1R")
            if b"\x1b[c" in buf or b"\x1b[0c" in buf:
                os.write(fd, b"\x1b[?62;22c")
            if b"\x1b[?u" in buf:
                os.write(fd, b"\x1b[?0u")
            pending = buf[-8:]
        wpid, status = os.waitpid(pid, os.WNOHANG)
        if wpid:
            exited = status
            break
    cpu1 = cpu_ticks(pid) if exited is None else None
    elapsed = max(1e-9, min(time.monotonic(), t_end) - t_measure)
    cpu_s = (cpu1 - cpu0) / CLK if (cpu0 is not None and cpu1 is not None) else float("nan")
    if exited is None:
        try:
            os.write(fd, b"q")
        except OSError:
            pass
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                r, _, _ = select.select([fd], [], [], 0.1)
                if fd in r:
                    os.read(fd, 65536)
            except OSError:
                pass
            wpid, status = os.waitpid(pid, os.WNOHANG)
            if wpid:
                exited = status
                break
        if exited is None:
            os.kill(pid, signal.SIGTERM)
            _, exited = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(exited)
        ok = 1
    else:
        rc = os.waitstatus_to_exitcode(exited)
        ok = 0  # it ended before the window closed: the measurement is not valid
        counted = total
    if dump:
        dump.close()
    rate = counted / elapsed
    cpu_pct = 100.0 * cpu_s / elapsed if cpu_s == cpu_s else float("nan")
    row = [a.label, f"{elapsed:.1f}", str(counted), f"{rate:.1f}", f"{cpu_s:.3f}", f"{cpu_pct:.3f}",
           str(frames), str(rc), str(ok), str(total)]
    print(f"watch {a.label}: {counted} bytes in {elapsed:.1f} s = {rate:.1f} B/s, CPU {cpu_s:.3f} s "
          f"({cpu_pct:.3f} %), {frames} synchronized frames, exit {rc}, valid={ok}", file=sys.stderr)
    if a.tsv:
        new = not os.path.exists(a.tsv)
        with open(a.tsv, "a") as f:
            if new:
                f.write("label\tseconds\tbytes\tbytes_per_s\tcpu_s\tcpu_pct\tframes\texit\tvalid\tbytes_total\n")
            f.write("\t".join(row) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
