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
        return _dated_png(figure, axis)
    finally:
        plt.close(figure)


def equity_and_drawdown_png(curve: pl.DataFrame, backtest: pl.DataFrame | None,
                            benchmark: pl.DataFrame | None, title: str) -> bytes:
    """Equity of the account against the backtest of the same sessions and a benchmark (each a
    frame of session, equity; either may be None or empty), with the account's drawdown below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 4.2), dpi=90, sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    try:
        top.plot(curve["session"].to_list(), curve["equity"].to_list(), label="account", linewidth=1.6)
        for frame, label, style in ((backtest, "backtest, same sessions", "--"),
                                    (benchmark, "universe, equal weight", ":")):
            if frame is not None and frame.height:
                top.plot(frame["session"].to_list(), frame["equity"].to_list(), label=label,
                         linewidth=1.2, linestyle=style)
        top.set_title(title, fontsize=10)
        top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))
        top.grid(alpha=0.3)
        top.legend(fontsize=8)
        bottom.fill_between(curve["session"].to_list(), (curve["drawdown"] * 100).to_list(), 0,
                            color="tab:red", alpha=0.35)
        bottom.set_ylabel("drawdown", fontsize=8)
        bottom.yaxis.set_major_formatter(PercentFormatter(decimals=1))
        bottom.grid(alpha=0.3)
        return _dated_png(figure, bottom)
    finally:
        plt.close(figure)


def _dated_png(figure, axis) -> bytes:
    """Session dates on `axis`, the figure as PNG bytes."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=8)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # a few sessions: the locator says it falls back, harmlessly
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image the Dagster UI shows inline in asset metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
