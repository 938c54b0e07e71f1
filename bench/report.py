#!/usr/bin/env python3
"""Combines one bench/run.sh output folder into report.md: every figure, and
its ratio to the Django peer and to the targets of issue 6 where both sides
were measured.

    report.py OUTDIR
"""
import json
import statistics
import sys
from pathlib import Path


def load(path):
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def best(summary, scenario):
    """The better of the runs of a scenario (the runs are noisy on 2 shared cores)."""
    rows = [r for r in (summary or []) if r["scenario"] == scenario]
    return max(rows, key=lambda r: r["rps"]) if rows else None


def peak_rss_mb(summary):
    values = [r.get("server_peak_rss_kb") or 0 for r in (summary or [])]
    return max(values) / 1024 if values else None


def main():
    out = Path(sys.argv[1])
    ours = load(out / "latchkey" / "summary.json")
    # The Django peer may have been measured in an earlier folder of the same
    # session (DJANGO_FROM), as it takes long to seed.
    django_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else out
    extra = load(out / "latchkey-extra.json") or {}
    django = load(django_dir / "django" / "summary.json")
    lines = ["# latchkey benchmark run", ""]
    meta = load(out / "latchkey" / "meta.json") or {}
    lines.append(f"Date {meta.get('date')}, {meta.get('nproc')} cores ({meta.get('cpu')}), {meta.get('wrk')}; "
                 f"wrk -t{meta.get('threads')} -c{meta.get('connections')} -d{meta.get('duration')}, "
                 f"best of {meta.get('runs')} runs.")
    lines.append("")
    lines.append("| scenario | latchkey req/s | p50 ms | p99 ms | non-2xx | Django req/s | ratio |")
    lines.append("|---|---|---|---|---|---|---|")
    # latchkey's `list` is one page of 100 (its default), Django's the whole
    # table: compare the page_size=1000 row below for like with like.
    for scenario in ["login", "me", "me_cookie", "refresh", "list", "register"]:
        r = best(ours, scenario)
        d = best(django, scenario)
        if not r:
            continue
        ratio = f"{r['rps'] / d['rps']:.1f}x" if d and d["rps"] and scenario != "list" else "-"
        lines.append(f"| {scenario} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['non2xx']} | "
                     f"{d['rps'] if d else '-'} | {ratio} |")
    django_list = best(django, "list")
    for name, row, peer in [("bare (GET /healthz)", extra.get("bare"), None),
                            ("list of 1,000 at page_size=1000", extra.get("list_page"), django_list)]:
        if row:
            ratio = f"{row['rps'] / peer['rps']:.0f}x" if peer and peer["rps"] else "-"
            lines.append(f"| {name} | {row['rps']:.1f} | {row['latency_us']['p50'] / 1000:.2f} | "
                         f"{row['latency_us']['p99'] / 1000:.2f} | {row['non2xx']} | {peer['rps'] if peer else '-'} | {ratio} |")
    lines.append("")
    me, bare = best(ours, "me"), extra.get("bare")
    if me and bare:
        lines.append(f"- `GET /list/<id>/` is {100 * me['rps'] / bare['rps']:.0f} % of the bare route ({bare['rps']:.0f} req/s).")
    bcrypt = extra.get("bcrypt")
    if bcrypt:
        bound = bcrypt["cores"] * 1000 / bcrypt["verify_ms_median"]
        lines.append(f"- bcrypt cost 12: {bcrypt['verify_ms_median']:.1f} ms per verification on one core; bound {bound:.2f} logins/s on {bcrypt['cores']} cores.")
        for scenario in ["login", "register"]:
            r = best(ours, scenario)
            if r:
                lines.append(f"- {scenario}: {r['rps']:.2f} req/s = {100 * r['rps'] / bound:.0f} % of the bcrypt bound.")
    mixed = extra.get("mixed")
    if mixed:
        lines.append(f"- mixed: during a login storm ({mixed['login']['rps']:.1f} logins/s), `GET /list/<id>/` did "
                     f"{mixed['me']['rps']:.0f} req/s with p50 {mixed['me']['latency_us']['p50'] / 1000:.2f} ms, "
                     f"p99 {mixed['me']['latency_us']['p99'] / 1000:.2f} ms.")
    rss = peak_rss_mb(ours)
    if rss:
        extra_rss = max([extra.get(k, {}).get("peak_rss_kb", 0) or 0 for k in ("bare", "list_page", "mixed")] + [0]) / 1024
        lines.append(f"- peak server RSS: {max(rss, extra_rss):.1f} MB over every scenario"
                     + (f" (Django: {peak_rss_mb(django):.0f} MB)" if django else "") + ".")
    start = extra.get("first_200")
    if start:
        lines.append(f"- first 200 after start (SQLite, fresh data folder): {start['first_200_ms_median']} ms median of {len(start['first_200_ms_runs'])}.")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
