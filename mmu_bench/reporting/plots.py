"""The leaderboard's plots (matplotlib, headless): the dimension scores per method, and every
method's trajectory in (normalised forgetting, normalised retention) space. PNG bytes depend on
the content only (no timestamps), written atomically."""

from __future__ import annotations

import io
import math
import statistics
from pathlib import Path

from mmu_bench.reporting.columns import TRACE, Dimension, value_at
from mmu_bench.runs import results, trajectory

COLOURS = ("#c0392b", "#2980b9", "#27ae60", "#7f8c8d", "#8e44ad", "#d35400", "#16a085", "#2c3e50")


def plot(rows: list[dict], path: Path, title: str, dims: list[Dimension]) -> None:
    """Every dimension score per method (one panel per forget ratio), error bars = std."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = sorted({r["forget_ratio"] for r in rows})
    most = max(sum(r["forget_ratio"] == ratio for r in rows) for ratio in ratios)
    # Wide enough for every row's bars; names slanted below them, so 30 rows stay readable.
    fig, axes = plt.subplots(len(ratios), 1, figsize=(max(10.0, 0.42 * most), 5.0 * len(ratios) + 0.6), squeeze=False)
    labels = [d.label + ("" if d.higher_is_better else " (lower is better)") for d in dims]
    for ax, ratio in zip(axes[:, 0], ratios):
        panel = [r for r in rows if r["forget_ratio"] == ratio]
        width = 0.8 / len(dims)
        for d, dim in enumerate(d.name for d in dims):
            means = [0.0 if math.isnan(r.get(f"{dim}/score_mean", float("nan"))) else r[f"{dim}/score_mean"]
                     for r in panel]
            stds = [0.0 if math.isnan(r.get(f"{dim}/score_std", float("nan"))) else r[f"{dim}/score_std"]
                    for r in panel]
            xs = [i + (d - (len(dims) - 1) / 2) * width for i in range(len(panel))]
            ax.bar(xs, means, width, yerr=stds, color=COLOURS[d % len(COLOURS)], label=labels[d], capsize=2)
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels([f"{r['method']} ({r.get('variant') or r['config_hash']})" if r["kind"] == "method"
                            else r["method"] for r in panel], fontsize=8, rotation=40, ha="right",
                           rotation_mode="anchor")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score")
        ax.set_title(f"forget {ratio:g}%", fontsize=10)
    axes[0, 0].legend(fontsize=8, ncol=min(4, len(dims)), loc="upper center", bbox_to_anchor=(0.5, 1.35))
    fig.suptitle(title, y=0.995, fontsize=11)
    _save(fig, path)


def _save(fig, path: Path, tight: bool = True) -> None:
    """A figure as PNG bytes that depend on its content only, written atomically."""
    import matplotlib.pyplot as plt

    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)


def plot_trade_off(rows: list[dict], path: Path, title: str, dims: list[Dimension]) -> bool:
    """Every method row's trajectory (mean over its seeds, point by point) in (normalised
    forgetting, normalised retention) space, one panel per retention dimension and their
    harmonic mean, one row of panels per forget ratio; the reference models as markers (the
    gold reference at forgetting 1). False (nothing written) when no row has a trajectory."""
    traced = [r for r in rows if r.get(TRACE)]
    forgetting = next((d.name for d in dims if not d.higher_is_better), None)
    if not traced or forgetting is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(d.name, d.label) for d in dims if d.higher_is_better] + [("harmonic", "harmonic mean")]
    ratios = sorted({r["forget_ratio"] for r in traced})
    entries = len(traced) + sum(r["kind"] == "reference" for r in rows)
    legend_height = 0.3 + 0.2 * math.ceil(entries / 4)  # inches
    height = 3.8 * len(ratios) + 0.4 + legend_height
    fig, axes = plt.subplots(len(ratios), len(curves), figsize=(4.2 * len(curves), height), squeeze=False)
    colours = plt.get_cmap("tab20").colors
    for axes_row, ratio in zip(axes, ratios):
        panel = [r for r in traced if r["forget_ratio"] == ratio]
        refs = [r for r in rows if r["kind"] == "reference" and r["forget_ratio"] == ratio]
        for ax, (curve, label) in zip(axes_row, curves):
            for i, row in enumerate(panel):
                x, y = _mean_trace(row[TRACE], forgetting, curve)
                ax.plot(x, y, "-o", ms=2.5, lw=1.2, color=colours[i % len(colours)], label=_legend(row))
            for k, ref in enumerate(refs):
                x = value_at(ref, f"{forgetting}/normalised_mean")
                y = _reference_retention(ref, curve, curves)
                ax.plot([x], [y], marker="*P^sD"[k % 5], ms=10, color="black", ls="none", label=ref["method"])
            for level in trajectory.LEVELS:
                ax.axvline(level, color="0.85", lw=0.8, zorder=0)
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.05)
            ax.set_xlabel("normalised visual forgetting")
            ax.set_ylabel(f"normalised {label}")
            ax.set_title(f"{label}, forget {ratio:g}%", fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=4, loc="lower center", frameon=False)
    fig.suptitle(f"{title}: retention against forgetting during unlearning", fontsize=11)
    fig.tight_layout(rect=(0, legend_height / height, 1, 0.97))
    _save(fig, path, tight=False)
    return True


def _mean_trace(traces: list[list[dict]], forgetting: str, curve: str) -> tuple[list[float], list[float]]:
    """Mean over seeds, point by point (over the points every seed has), of forgetting and the curve."""
    n = min(len(t) for t in traces)

    def mean(key, i):
        values = [v for v in (value_at(t[i], key) for t in traces) if not math.isnan(v)]
        return statistics.fmean(values) if values else float("nan")

    return [mean(forgetting, i) for i in range(n)], [mean(curve, i) for i in range(n)]


def _reference_retention(row: dict, curve: str, curves: list[tuple[str, str]]) -> float:
    if curve != "harmonic":
        return value_at(row, f"{curve}/normalised_mean")
    return results.harmonic_mean([value_at(row, f"{c}/normalised_mean") for c, _ in curves if c != "harmonic"])


def _legend(row: dict) -> str:
    return f"{row['method']} ({row['variant']})" if row.get("variant") else row["method"]


def plot_forget_ratio(groups: list[list[dict]], path: Path, title: str, dims: list[Dimension]) -> bool:
    """MUSE's C5: each normalised dimension and the overall against the forget ratio, one line per
    method (``groups``: its rows, one per ratio, ``reporting.continual.ratio_groups``), error bars
    = std over seeds. False (nothing written) without a method at two or more ratios."""
    if not groups:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(f"{d.name}/normalised", f"{d.label} (normalised)") for d in dims] + [("overall", "overall")]
    names = [_legend(g[0]) for g in groups]
    names = [f"{n} ({g[0]['config_hash']})" if names.count(n) > 1 else n for n, g in zip(names, groups)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 4.2), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for i, group in enumerate(groups):
            ratios = [r["forget_ratio"] for r in group]
            means = [value_at(r, f"{key}_mean") for r in group]
            stds = [0.0 if math.isnan(value_at(r, f"{key}_std")) else r[f"{key}_std"] for r in group]
            ax.errorbar(ratios, means, yerr=stds, marker="o", ms=3.5, lw=1.2, capsize=2,
                        color=COLOURS[i % len(COLOURS)], label=names[i])
        ax.set_xlabel("forget ratio (%)")
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(label, fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=min(6, len(labels)), loc="lower center", frameon=False)
    fig.suptitle(f"{title}: scores against the size of the forget set", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    _save(fig, path, tight=False)
    return True


def plot_continual(rows: list[dict], path: Path, title: str) -> bool:
    """The overall score after each request of a stream (x: request 1..K), one line per continual
    row (mean over its seeds), the one-shot runs it pairs with (their mean) as a cross at K.
    False (nothing written) without continual rows."""
    rows = [r for r in rows if r.get("requests")]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colours = plt.get_cmap("tab20").colors
    paired = False
    for i, row in enumerate(rows):
        k, colour = row["requests"], colours[i % len(colours)]
        xs = list(range(1, k + 1))
        ax.plot(xs, [value_at(row, f"after/{j}/overall_mean") for j in xs], "-o", ms=3.5, lw=1.3, color=colour,
                label=f"{_legend(row)}, forget {row['forget_ratio']:g}%, {k} requests")
        one_shot = value_at(row, "one_shot/overall_mean")
        if not math.isnan(one_shot):
            ax.plot([k], [one_shot], marker="x", ms=8, mew=2, color=colour, ls="none")
            paired = True
    if paired:
        ax.plot([], [], marker="x", ms=8, mew=2, color="black", ls="none", label="its one-shot runs, at K")
    ax.set_xlabel("request")
    ax.set_ylabel("overall after the request (mean over seeds)")
    ax.set_ylim(-0.02, 1.05)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(f"{title}: overall after each request (continual)", fontsize=11)
    _save(fig, path)
    return True
