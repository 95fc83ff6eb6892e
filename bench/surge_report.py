#!/usr/bin/env python3
"""bench/surge.sh's report: a Markdown table on stdout and an SVG plot.

usage: surge_report.py RESULTS.jsonl OUT.svg

Reads the closed-loop capacity run and the open-loop levels that surge.sh
wrote, prints one table row per level, and draws two panels: goodput
against offered load (with the 90 % of peak line, the issue's goal) and
the p99 latency of admitted requests per priority class. Written by hand
(no plotting library on the build machine): the SVG is plain shapes.
"""
import json
import sys

CLASSES = ["critical", "standard", "batch"]
COLOURS = {"critical": "#c0392b", "standard": "#2471a3", "batch": "#7d8c8d", "goodput": "#1e8449"}


def load(path):
    cap, levels, unloaded = None, [], None
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if "capacity_rps" in d:
                cap = d["capacity_rps"]
            elif d.get("mode") == "open":
                levels.append(d)
    levels.sort(key=lambda d: d["multiple"])
    return cap, levels


def fmt(v, digits=0):
    return "–" if v is None else f"{v:.{digits}f}"


def table(cap, levels):
    peak = max([d["goodput_rps"] for d in levels] + [cap or 0])
    print(f"Measured capacity (closed loop, 64 clients): {cap:.0f} requests/s.\n")
    head = ["offered", "offered req/s", "goodput req/s", "of peak"]
    for c in CLASSES:
        head += [f"{c} ok", f"{c} p50 / p99 ms"]
    head += ["shed (503)", "refusals with Retry-After", "peak RSS MiB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for d in levels:
        row = [f"{d['multiple']}×", fmt(d["offered_rps"]), fmt(d["goodput_rps"]), f"{100 * d['goodput_rps'] / peak:.0f} %"]
        shed = refusals = with_ra = 0
        for c in CLASSES:
            k = d["classes"][c]
            row += [f"{100 * k['success_ratio']:.1f} %", f"{fmt(k['p50_ms'])} / {fmt(k['p99_ms'])}"]
            shed += k["shed_503"]
            refusals += k["shed_503"] + k["refused_429"]
            with_ra += k["refusals_with_retry_after"]
        row += [f"{100 * shed / max(d['sent'], 1):.1f} %", f"{with_ra}/{refusals}", fmt(d.get("peak_rss_kib", 0) / 1024, 1)]
        print("| " + " | ".join(row) + " |")


def svg(cap, levels, path):
    w, h, pad = 960, 380, 60
    pw = (w - 3 * pad) / 2
    ph = h - 2 * pad
    xs = [d["multiple"] for d in levels]
    xmax = max(xs) if xs else 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']

    def panel(x0, title, ylabel, ymax, series, hline=None):
        def px(x):
            return x0 + pw * x / xmax

        def py(y):
            return pad + ph - ph * min(y, ymax) / ymax

        out.append(f'<text x="{x0 + pw / 2}" y="{pad - 25}" text-anchor="middle" font-size="14">{title}</text>')
        out.append(f'<line x1="{x0}" y1="{pad + ph}" x2="{x0 + pw}" y2="{pad + ph}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{pad}" x2="{x0}" y2="{pad + ph}" stroke="black"/>')
        for i in range(5):
            y = ymax * i / 4
            out.append(f'<text x="{x0 - 6}" y="{py(y) + 4}" text-anchor="end">{y:.0f}</text>')
            out.append(f'<line x1="{x0}" y1="{py(y)}" x2="{x0 + pw}" y2="{py(y)}" stroke="#ddd"/>')
        for x in xs:
            out.append(f'<text x="{px(x)}" y="{pad + ph + 16}" text-anchor="middle">{x}×</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{pad + ph + 36}" text-anchor="middle">offered load (× capacity)</text>')
        out.append(f'<text x="{x0 - 45}" y="{pad + ph / 2}" text-anchor="middle" transform="rotate(-90 {x0 - 45} {pad + ph / 2})">{ylabel}</text>')
        if hline is not None:
            value, label = hline
            out.append(f'<line x1="{x0}" y1="{py(value)}" x2="{x0 + pw}" y2="{py(value)}" stroke="#999" stroke-dasharray="4 4"/>')
            out.append(f'<text x="{x0 + pw - 4}" y="{py(value) - 4}" text-anchor="end" fill="#666">{label}</text>')
        for k, (name, points) in enumerate(series):
            pts = [(px(x), py(y)) for x, y in points if y is not None]
            if not pts:
                continue
            colour = COLOURS[name]
            out.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>' % (colour, " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)))
            for a, b in pts:
                out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{colour}"/>')
            out.append(f'<text x="{x0 + 10}" y="{pad + 14 + 16 * k}" fill="{colour}">{name}</text>')

    peak = max([d["goodput_rps"] for d in levels] + [cap or 0])
    panel(pad, "Goodput", "requests/s", peak * 1.2 or 1,
          [("goodput", [(d["multiple"], d["goodput_rps"]) for d in levels])], (0.9 * peak, "90 % of peak"))
    p99max = max([d["classes"][c]["p99_ms"] or 0 for d in levels for c in CLASSES] + [1])
    panel(2 * pad + pw, "p99 latency of admitted requests", "ms", p99max * 1.1,
          [(c, [(d["multiple"], d["classes"][c]["p99_ms"]) for d in levels]) for c in CLASSES])
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cap, levels = load(sys.argv[1])
    if cap is None or not levels:
        sys.exit("surge_report: no capacity run or no levels in " + sys.argv[1])
    table(cap, levels)
    svg(cap, levels, sys.argv[2])


if __name__ == "__main__":
    main()
