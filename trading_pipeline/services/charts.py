"""Charts for asset metadata, drawn with matplotlib off-screen (no display needed)."""

from __future__ import annotations

import base64
import io
import warnings

import polars as pl


def equity_against_backtest_png(track: pl.DataFrame, shadow: pl.DataFrame, title: str) -> bytes:
    """The account's equity and the backtest's over the same sessions, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: runs in daemons, CI and code servers
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=90)
    try:
        axis.plot(track["session"].to_list(), track["equity"].to_list(), label="account", linewidth=1.6)
        axis.plot(shadow["session"].to_list(), shadow["equity"].to_list(), label="backtest, same sessions",
                  linewidth=1.2, linestyle="--")
        axis.set_title(title, fontsize=10)
        axis.set_ylabel("equity")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        locator = mdates.AutoDateLocator(maxticks=8)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # a few sessions: the locator says it falls back, harmlessly
            warnings.simplefilter("ignore", UserWarning)
            figure.tight_layout()
            figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image the Dagster UI shows inline in asset metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
