#!/usr/bin/env python3
"""The report of one bench/run.sh: every table, then the issue's targets met or missed.

    python3 bench/report.py RESULTS_DIR > report.md

Reads RESULTS_DIR/{machine.txt, wire-tmpfs/raw.tsv, wire-disk/raw.tsv, store-tmpfs.tsv,
store-disk.tsv, active_rss.tsv, dashboard.tsv}; parts that did not run are skipped.
"""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import summarize  # noqa: E402

HAUL_TOOLS = ["haul", "haul-1task", "haul-ntasks", "haul-ntasks-run"]
WL_NAMES = {"big": "1 GiB", "small": "1,000 x 100 KiB", "tiny": "10,000 x 4 KiB", "mid": "256 MiB"}


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def fmt(x, nd=2):
    return "n/a" if x is None or x != x else f"{x:.{nd}f}"


def main():
    rd = sys.argv[1]
    out = []
    p = out.append
    p("# haul benchmarks\n")
    if os.path.exists(f"{rd}/machine.txt"):
        p("## Machine\n\n```\n" + open(f"{rd}/machine.txt").read().rstrip() + "\n```\n")

    # ---------------------------------------------------------------- wire
    raws = [(f"{rd}/wire-{fs}/raw.tsv", fs) for fs in ("tmpfs", "disk")]
    raws = [(path, fs) for path, fs in raws if os.path.exists(path)]
    stats = []
    if raws:
        rows = summarize.load([f"{path}:{fs}" for path, fs in raws])
        stats = summarize.summarise(rows, HAUL_TOOLS)
        p("## Wire: haul against curl, wget, aria2c (medians of the timed rounds)\n")
        p("Rounds: tmpfs and disk runs each say theirs in `wire-*/machine.txt`; `ok` counts verified "
          "runs. `add s` is the part of haul's wall time spent in `haul add` (`add --each`, one "
          "process and one transaction, for haul-ntasks). haul-ntasks-run times `haul run` alone "
          "on the same database.\n")
        p(summarize.table(stats, True) + "\n")
        p("### Ratios: haul / peer (below 1.00: haul is faster or cheaper)\n")
        p(summarize.ratios(stats, HAUL_TOOLS) + "\n")
        for path, fs in raws:
            cmds = os.path.join(os.path.dirname(path), "commands.txt")
            if fs == "tmpfs" and os.path.exists(cmds):
                p("### Exact commands ({out} = download dir, {state} = haul's database dir)\n")
                p("| workload | tool | command |\n|---|---|---|")
                for line in open(cmds):
                    wl, tool, cmd = line.rstrip("\n").split("\t", 2)
                    cmd = cmd.replace("|", "\\|")
                    p(f"| {wl} | {tool} | `{cmd}` |")
                p("")
    by = {(s["label"], s["workload"], s["tool"]): s for s in stats}

    # ---------------------------------------------------------------- store
    store = []
    for fs in ("tmpfs", "disk"):
        for r in read_tsv(f"{rd}/store-{fs}.tsv"):
            r["fsrun"] = fs
            store.append(r)
    for r in read_tsv(f"{rd}/frame.tsv"):
        r["fsrun"] = "tmpfs"
        store.append(r)
    if store:
        p("## Store and dashboard frame (benches/store.rs, benches/frame.rs; medians, ms)\n")
        p("| group | case | fs | runs | median ms | min ms | max ms | note |\n|---|---|---|---|---|---|---|---|")
        for r in store:
            p(f"| {r['group']} | {r['case']} | {r['fsrun']} | {r['runs']} | {float(r['median_ms']):.3f} | "
              f"{float(r['min_ms']):.3f} | {float(r['max_ms']):.3f} | {r['note']} |")
        p("")

    # ---------------------------------------------------------------- active / dashboard
    active = read_tsv(f"{rd}/active_rss.tsv")
    if active:
        a = active[0]
        p("## Memory with many active downloads (bench/active_rss.sh)\n")
        p("| tasks | files done | most running at once (sampled) | wall s | CPU s | peak RSS MiB | max threads | max open fds |")
        p("|---|---|---|---|---|---|---|---|")
        p(f"| {a['tasks']} | {a['ok_files']} | {a['max_running_seen']} | {a['wall_s']} | {a['cpu_s']} | "
          f"{int(a['peak_rss_kib']) / 1024:.1f} | {a['max_threads']} | {a['max_fds']} |\n")
    dash = read_tsv(f"{rd}/dashboard.tsv")
    if dash:
        p("## Dashboard: `haul watch` on a 120x40 pty (bench/dashboard.sh)\n")
        p("| case | seconds | bytes | bytes/s | CPU s | CPU % | sync frames | valid |\n|---|---|---|---|---|---|---|---|")
        for d in dash:
            note = "" if d["valid"] == "1" else f" (watch exited {d['exit']} before the window: not measured)"
            p(f"| {d['label']}{note} | {d['seconds']} | {d['bytes']} | {d['bytes_per_s']} | {d['cpu_s']} | "
              f"{d['cpu_pct']} | {d['frames']} | {d['valid']} |")
        p("")

    # ---------------------------------------------------------------- targets
    p("## Targets (issue 4)\n")
    p("| target | measured | verdict |\n|---|---|---|")

    def wall(fs, wl, tool):
        s = by.get((fs, wl, tool))
        return (s["wall"], s["cpu"]) if s and s["ok"] else (None, None)

    def verdict(ok):
        return "n/a" if ok is None else ("met" if ok else "**missed**")

    def ratio_row(label, num, den, limit, what="wall"):
        if num is None or den is None:
            p(f"| {label} | not measured | n/a |")
            return
        r = num / den
        p(f"| {label} | {fmt(r)} ({what} {fmt(num, 3)} s / {fmt(den, 3)} s) | {verdict(r <= limit)} |")

    hw, hc = wall("tmpfs", "big", "haul")
    cw, cc = wall("tmpfs", "big", "curl")
    ratio_row("1 GiB tmpfs: wall <= 1.0x curl", hw, cw, 1.0)
    ratio_row("1 GiB tmpfs: CPU <= 1.1x curl", hc, cc, 1.1, "CPU")
    dw, _ = wall("disk", "big", "haul")
    ddw, _ = wall("disk", "limits", "dd-out-fsync")
    aw, _ = wall("disk", "big", "aria2c")
    ratio_row("1 GiB disk: <= 1.2x dd conv=fsync", dw, ddw, 1.2)
    ratio_row("1 GiB disk: <= 0.6x aria2c -x1", dw, aw, 0.6)
    for wl in ("small", "tiny"):
        for tool in ("haul-1task", "haul-ntasks", "haul-ntasks-run"):
            t, _ = wall("tmpfs", wl, tool)
            c, _ = wall("tmpfs", wl, "curl")
            ratio_row(f"{WL_NAMES[wl]} tmpfs, {tool}: <= 1.25x curl --parallel 16", t, c, 1.25)
        for tool in ("haul-1task", "haul-ntasks", "haul-ntasks-run"):
            t, _ = wall("disk", wl, tool)
            a, _ = wall("disk", wl, "aria2c")
            ratio_row(f"{WL_NAMES[wl]} disk, {tool}: <= 0.5x aria2c -j16", t, a, 0.5)

    def store_case(prefix, fs):
        for r in store:
            if r["fsrun"] == fs and r["case"].startswith(prefix):
                return float(r["median_ms"]), r["case"]
        return None, None

    for fs in ("tmpfs", "disk"):
        for prefix, limit, label in [
            ("tick, 10000 running tasks", 20, "heartbeat tick, 10,000 tasks <= 20 ms"),
            ("sweep::plan", 5, "stale sweep (sweep::plan), 1M rows <= 5 ms"),
            ("history_page top:", 5, "history page, top, 1M rows <= 5 ms"),
            ("history_page middle:", 5, "history page, middle (by key), 1M rows <= 5 ms"),
            ("history_page last page:", 5, "history page, last page (by key), 1M rows <= 5 ms"),
            ("history_page end:", 5, "history page, End (oldest), 1M rows <= 5 ms"),
            ("history_page status=failed middle:", 5, "history page, status filter, middle, <= 5 ms"),
            ("history_page status=failed last page:", 5, "history page, status filter, last page, <= 5 ms"),
            ("history_page project=project-7 middle:", 5, "history page, project filter, middle, <= 5 ms"),
            ("history_page status=completed project=project-7 middle:", 5,
             "history page, status + project filter, middle, <= 5 ms"),
        ]:
            v, case = store_case(prefix, fs)
            if v is None:
                p(f"| {label} ({fs}) | not measured | n/a |")
            else:
                p(f"| {label} ({fs}) | {v:.3f} ms ({case}) | {verdict(v <= limit)} |")
    frames = [r for r in store if r["group"] == "frame"]
    renders = [r for r in frames if r["case"].startswith("render_frame")]
    builds = [r for r in frames if r["case"].startswith("SnapshotSource::build") and "(window re-read)" in r["case"]]
    if renders:
        worst = max(renders, key=lambda r: float(r["median_ms"]))
        v = float(worst["median_ms"])
        p(f"| one frame <= 2 ms at 1M history rows, 120x40: view model + render | {v:.3f} ms ({worst['case']}) | {verdict(v <= 2)} |")
        if builds:
            slow = max(builds, key=lambda r: float(r["median_ms"]))
            b = float(slow["median_ms"])
            p(f"| ... SnapshotSource::build (feed thread) + render, worst depth | {b + v:.3f} ms "
              f"(build {b:.3f}: {slow['case']}; render {v:.3f}) | {verdict(b + v <= 2)} |")
    else:
        p("| one frame <= 2 ms at 1M history rows (120x40) | not measured | n/a |")
    idle = [d for d in dash if d["label"].startswith("idle")]
    if idle and idle[0]["valid"] == "1" and float(idle[0]["seconds"]) > 0:
        d = idle[0]
        p(f"| idle watcher writes 0 B/s | {d['bytes_per_s']} B/s over {d['seconds']} s | {verdict(float(d['bytes']) == 0)} |")
        p(f"| idle watcher <= 0.5 % CPU | {d['cpu_pct']} % over {d['seconds']} s | {verdict(float(d['cpu_pct']) <= 0.5)} |")
    else:
        p("| idle watcher writes 0 B/s and <= 0.5 % CPU | `haul watch` did not run (see dashboard.tsv) | n/a |")
    if active:
        a = active[0]
        mib = int(a["peak_rss_kib"]) / 1024
        p(f"| peak RSS <= 40 MiB with {a['tasks']} active tasks | {mib:.1f} MiB (up to {a['max_running_seen']} running at once) | {verdict(mib <= 40)} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
