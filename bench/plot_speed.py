"""Plot whole-run steps per second of each implementation from `speed.py --json` output.

    python bench/plot_speed.py bench/results/speed.json docs/speed.png

One bar per implementation at its median SPS, with each run as a dot; the title gives the ratios of
ours to each peer. Needs matplotlib (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="JSON written by speed.py --json")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(args.results.read_text())
    runs = [r for r in data["runs"] if r.get("ok")]
    variants = data.get("variants", {})  # "ours-eager": ["train.compile=false"], ...
    impls = [name for name in ("ours", *variants, "sb3", "cleanrl") if any(r["impl"] == name for r in runs)]
    sps = {name: [r["steps"] / r["wall_s"] for r in runs if r["impl"] == name] for name in impls}
    medians = {name: statistics.median(values) for name, values in sps.items()}
    labels = {"ours": "ddpg-cli", "sb3": "Stable-Baselines3", "cleanrl": "CleanRL"}
    ours = [name for name in impls if name == "ours" or name in variants]
    for name in ours:  # e.g. train.compile=true: say which ddpg-cli was timed
        settings = dict(a.split("=", 1) for a in [*data.get("overrides", []), *variants.get(name, [])])  # the variant's value wins
        labels[name] = "ddpg-cli" + "".join(f"\n{key}={value}" for key, value in settings.items())

    fig, ax = plt.subplots(figsize=(1.8 * len(impls) + 1.2, 3.8), dpi=120)
    colors = {"sb3": "#718096", "cleanrl": "#a0aec0"}
    for x, name in enumerate(impls):
        ax.bar(x, medians[name], color=colors.get(name, "#2b6cb0" if name == "ours" else "#63b3ed"), width=0.6)
        ax.scatter([x] * len(sps[name]), sps[name], color="black", s=12, zorder=3)
        ax.text(x, medians[name], f"{medians[name]:.0f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(impls)), [labels[n] for n in impls])
    ax.set_ylabel("steps per second (whole run)")
    peers = [p for p in impls if p not in ours]
    ratios = ", ".join(f"{medians['ours'] / medians[p]:.2f}x {labels[p]}" for p in peers if "ours" in medians)
    first = labels["ours"].replace("\n", " ") if "ours" in medians else ""
    ax.set_title(f"{data['env_id']}, {data['steps']:,} steps, median of {data['rounds']}" + (f"\n{first} = {ratios}" if ratios else ""), fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
