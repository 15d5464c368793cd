"""Draw the benchmark summary as one PNG: a panel per (scenario, size) with a
bar per client variant and the bare-socket ceiling as a dashed line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = dict[str, Any]

COLOURS = {"aiorabbit": "#d9480f", "aio-pika": "#1971c2", "aiormq": "#2f9e44", "pika": "#7048e8"}
TITLES = {
    "publish": "publish, no confirms",
    "publish_confirms": "publish, confirms (1,000 out)",
    "consume_ack": "consume + ack (prefetch 1,000)",
    "consume_noack": "consume, no_ack",
}


def draw(
    rows: list[Row],
    info: dict[str, Any],
    path: Path,
    ceiling_for: Callable[[list[Row], str, str], Row | None],
) -> None:
    """Write the chart to ``path``; ``ceiling_for(rows, scenario, size)``
    gives the bare-socket row each panel's dashed line shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {r["size"] for r in rows if r["scenario"] != "rpc"}
    sizes = [s for s in ("64B", "64KiB", "4MiB") if s in measured]
    scenarios = [s for s in TITLES if any(r["scenario"] == s for r in rows)]
    rpc = [r for r in rows if r["scenario"] == "rpc" and "p50_us" in r]
    ncols = len(scenarios) + (1 if rpc else 0)
    fig, axes = plt.subplots(len(sizes), ncols, figsize=(4.2 * ncols, 3.4 * len(sizes)), squeeze=False)
    for i, size in enumerate(sizes):
        unit, key = ("msg/s", "msg_per_s") if size == "64B" else ("MB/s", "mb_per_s")
        for j, scenario in enumerate(scenarios):
            ax = axes[i][j]
            bars = [r for r in rows if r["scenario"] == scenario and r["size"] == size and key in r]
            ceiling = ceiling_for(rows, scenario, size)
            bars = [r for r in bars if r["variant"] != "bare"]
            names = [r["variant"].replace("+uvloop", "\n+uvloop") for r in bars]
            colours = [COLOURS.get(r["variant"].split("+")[0], "grey") for r in bars]
            hatches = ["//" if "uvloop" in r["variant"] else "" for r in bars]
            drawn = ax.bar(names, [r[key] for r in bars], color=colours)
            for bar, hatch in zip(drawn, hatches, strict=False):
                bar.set_hatch(hatch)
            if ceiling is not None and key in ceiling:
                ax.axhline(ceiling[key], color="black", linestyle="--", linewidth=1)
                ax.text(len(bars) - 0.5, ceiling[key], " bare socket", va="bottom", ha="right", fontsize=7)
            ax.set_title(f"{TITLES[scenario]}, {size}", fontsize=9)
            ax.set_ylabel(unit, fontsize=8)
            ax.tick_params(axis="x", labelsize=6.5)
            ax.tick_params(axis="y", labelsize=7)
        if rpc:
            ax = axes[i][-1]
            if i == 0:
                names = [r["variant"].replace("+uvloop", "\n+uvloop") for r in rpc]
                x = range(len(rpc))
                for shift, key, colour in ((-0.2, "p50_us", "#868e96"), (0.2, "p99_us", "#343a40")):
                    heights = [r[key] for r in rpc]
                    ax.bar([p + shift for p in x], heights, width=0.4, label=key[:3], color=colour)
                ax.set_xticks(list(x), names)
                ax.set_title("RPC round trip, 64B (lower is better)", fontsize=9)
                ax.set_ylabel("µs", fontsize=8)
                ax.tick_params(axis="x", labelsize=6.5)
                ax.tick_params(axis="y", labelsize=7)
                ax.legend(fontsize=7)
            else:
                ax.axis("off")
    fig.suptitle(f"aiorabbit vs peers: {info['broker']}, {info['cores']} cores, Python {info['python']} "
                 f"({info['date']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
