"""The long-conversation bench's plot: bytes written per turn against the turn number,
one line per saver, one panel per state variant (matplotlib, Agg backend: no display)."""

from __future__ import annotations

from pathlib import Path

from bench.long_report import LongResults

__all__ = ["plot_bytes_per_turn"]


def plot_bytes_per_turn(res: LongResults, path: Path) -> bool:
    """Write the PNG; False (nothing written) if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    variants = list(res.args.variants)
    fig, axes = plt.subplots(1, len(variants), figsize=(6.5 * len(variants), 4.5),
                             squeeze=False, sharey=True)
    for ax, variant in zip(axes[0], variants):
        for run in res.variant(variant):
            per_turn = [b / 1e3 for b in run.per_turn_bytes()]
            if not per_turn or not any(per_turn):
                continue  # InMemorySaver writes nothing
            label = run.name + (" (stopped early)" if run.stopped else "")
            ax.plot(range(1, len(per_turn) + 1), per_turn, label=label, linewidth=1.2)
        ax.set_title(f"{variant} state")
        ax.set_xlabel("turn")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    axes[0][0].set_ylabel("bytes written per turn (kB, log scale)")
    fig.suptitle(f"Bytes written per turn, {res.args.turns}-turn tool-calling conversation "
                 "(stream handlers included)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
