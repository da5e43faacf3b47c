"""Infrastructure of the plots: style, saving, figures, legends, curve thinning, input checks,
colours.

Importing this module selects matplotlib's non-interactive Agg backend before pyplot is loaded.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

# a batch tool writes files only: never try to open a window (e.g. on a node without display)
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402

from mva.evaluation._arrays import as_1d, signal_mask, weights_or_ones  # noqa: E402

# one logger for all plot modules, named as before the split into modules
logger = logging.getLogger("mva.evaluation.plots")

Formats = Sequence[str]
DEFAULT_FORMATS: tuple[str, ...] = ("png", "pdf")

# Petroff colour-blind-safe palette, the one mplhep's CMS style cycles through
SIGNAL = "#5790fc"
BACKGROUND = "#e42536"
COLOURS = ("#5790fc", "#f89c20", "#e42536", "#964a8b", "#9c9ca1", "#7a21dd", "#2ca02c", "#000000")
REFERENCE = "#7f7f7f"

# curves with one point per distinct score (10^6 for large test sets) make huge PDFs; this
# many points, spread along the drawn arc length, are indistinguishable from all of them
_MAX_POINTS = 2000
# fixed resolution so that file sizes and test expectations do not depend on local rcParams
_RC: dict[str, Any] = {"savefig.dpi": 100, "figure.dpi": 100}
# grids of panels need smaller text than CMS's 26 pt single plots
# and no minor ticks: matplotlib's tick objects dominate the drawing time of a 20-panel grid
_RC_GRID: dict[str, Any] = {"font.size": 18, "xtick.minor.visible": False,
                            "ytick.minor.visible": False}


# --------------------------------------------------------------------------- infrastructure


def _formats(formats: Formats | str) -> list[str]:
    if isinstance(formats, str):
        formats = (formats,)
    return [str(f).lower().lstrip(".") for f in formats]


def _grid_margins(fig: Figure, top_in: float = 0.8) -> None:
    """Fixed margins (in inches) for a grid of panels: constrained layout and tight bounding
    boxes cost a full extra draw each, seconds for a 20-panel figure."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=1.3 / w, right=1 - 0.3 / w, bottom=1.0 / h, top=1 - top_in / h,
                        wspace=0.38, hspace=0.42)


def _fixed_layout(fig: Figure, tight: bool) -> Any:
    """Run the figure's layout engine once and keep its result; return the tight bounding box
    (inches, padded as ``bbox_inches="tight"`` pads it) or ``None``.

    ``savefig`` would otherwise lay the figure out again, and measure its tight box with one
    more draw, for every file: four draws for a PNG and a PDF instead of three.
    """
    if not tight and fig.get_layout_engine() is None:
        return None
    fig.draw_without_rendering()  # the layout engine runs in this draw
    return _keep_layout(fig, tight, _renderer(fig))


def _renderer(fig: Figure) -> Any:
    """The renderer of the figure's last draw (a figure made without pyplot has a canvas
    without ``get_renderer``)."""
    canvas = fig.canvas
    return canvas.get_renderer() if hasattr(canvas, "get_renderer") else fig._get_renderer()


def _keep_layout(fig: Figure, tight: bool, renderer: Any) -> Any:
    """After a draw: freeze the axes where the layout engine put them and return the padded
    tight box (inches) or ``None``."""
    if fig.get_layout_engine() is not None:
        # axes keep the positions just computed; no engine at all rather than "none", for
        # which savefig would draw the figure once more before every file
        fig.set_layout_engine(None)
        if fig.get_layout_engine() is not None:  # an rcParam asks for an engine
            fig.set_layout_engine("none")
    if not tight:
        return None
    return fig.get_tightbbox(renderer).padded(plt.rcParams["savefig.pad_inches"])


def _png_as_drawn(fig: Figure) -> bool:
    """Whether the figure's own Agg draw is what ``savefig`` would write as PNG: an Agg canvas,
    the figure's resolution and colours (the plot style sets them so)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    rc = plt.rcParams
    return (isinstance(fig.canvas, FigureCanvasAgg)
            and rc["savefig.dpi"] in ("figure", fig.dpi)
            and rc["savefig.facecolor"] == "auto" and rc["savefig.edgecolor"] == "auto"
            and not rc["savefig.transparent"])


#: the margin (inches) around a figure without a layout engine that its PNG draw covers: a
#: legend above the axes or a long tick label may reach beyond the figure's edges, and
#: ``bbox_inches="tight"`` shows them
_MARGIN_IN = 2.0


def _save_png_drawn(fig: Figure, path: Path, tight: bool) -> Any:
    """Draw the figure once on its Agg canvas (the layout engine runs in that draw), write the
    PNG from the canvas (cropped to the padded tight box) and return the box for the other
    formats, as :func:`_fixed_layout` does.

    One draw instead of two: ``savefig`` would render the PNG again after the layout draw.
    A figure without a layout engine is drawn on a canvas a margin larger on every side
    (``savefig`` with that box: a shift by whole pixels), so that content beyond its own
    edges is in the crop too; content beyond the margin, or beyond the edges of a figure with
    a layout engine (which the enlarged draw would lay out again), is saved by ``savefig``
    with the box.
    """
    import matplotlib.image as mimage
    from matplotlib.colors import to_rgba
    from matplotlib.transforms import Bbox

    w, h = fig.get_size_inches()
    margin = 0.0
    if tight and fig.get_layout_engine() is None:
        margin = np.ceil(_MARGIN_IN * fig.dpi) / fig.dpi  # whole pixels: the same rendering
        buf = io.BytesIO()
        fig.savefig(buf, format="rgba", bbox_inches=Bbox([[-margin, -margin],
                                                          [w + margin, h + margin]]))
        rows, cols = int(round((h + 2 * margin) * fig.dpi)), int(round((w + 2 * margin) * fig.dpi))
        image = np.frombuffer(buf.getbuffer(), dtype=np.uint8).reshape(rows, cols, 4)
        # the renderer of that draw measured every text already (its caches are warm)
        renderer = getattr(fig.canvas, "renderer", None) or _renderer(fig)
        bbox = _keep_layout(fig, tight, renderer)
    else:
        fig.canvas.draw()
        bbox = _keep_layout(fig, tight, fig.canvas.get_renderer())
        image = np.asarray(fig.canvas.buffer_rgba())
    if bbox is not None:
        content = bbox.padded(-plt.rcParams["savefig.pad_inches"])
        tol = 0.5 / fig.dpi
        if (content.x0 < -margin - tol or content.y0 < -margin - tol
                or content.x1 > w + margin + tol or content.y1 > h + margin + tol):
            fig.savefig(path, format="png", bbox_inches=bbox)
            return bbox
        image = _crop(image, bbox.translated(margin, margin), fig.dpi,
                      to_rgba(fig.get_facecolor()))
    mimage.imsave(path, image, format="png", origin="upper", dpi=fig.dpi)
    return bbox


def _crop(image: np.ndarray, bbox: Any, dpi: float, background: tuple) -> np.ndarray:
    """The pixels of ``image`` (rows from the top) inside ``bbox`` (inches from the lower
    left), on ``background`` where the box extends beyond the image (its padding)."""
    height, width = image.shape[:2]
    x0, x1 = int(np.floor(bbox.x0 * dpi)), int(np.ceil(bbox.x1 * dpi))
    top, bottom = height - int(np.ceil(bbox.y1 * dpi)), height - int(np.floor(bbox.y0 * dpi))
    out = np.empty((bottom - top, x1 - x0, 4), dtype=np.uint8)
    out[...] = np.round(np.asarray(background) * 255).astype(np.uint8)
    r0, r1, c0, c1 = max(top, 0), min(bottom, height), max(x0, 0), min(x1, width)
    out[r0 - top:r1 - top, c0 - x0:c1 - x0] = image[r0:r1, c0:c1]
    return out


def save(fig: Figure, stem: str | Path, formats: Formats = DEFAULT_FORMATS,
         tight: bool = True) -> list[Path]:
    """Write ``fig`` as ``stem.<fmt>`` for each format, creating parent directories.

    The figure is not closed (the plot functions close their own figures).

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of ``formats``.
    """
    stem = Path(stem)
    fmts = _formats(formats)
    supported = fig.canvas.get_supported_filetypes()
    unknown = [f for f in fmts if f not in supported]
    if unknown:
        raise ValueError(f"unsupported plot format(s) {unknown}; choose from {sorted(supported)}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    # not with_suffix: a stem such as "roc_v1.2" must keep its dot
    paths = [stem.with_name(f"{stem.name}.{fmt}") for fmt in fmts]
    # the layout (and the tight box) once for all formats: each costs a full draw per file;
    # a PNG is written from that draw where it can be (a layout engine or a tight box would
    # otherwise cost the PNG a draw of its own)
    drawn = None
    if "png" in fmts and (tight or fig.get_layout_engine() is not None) and _png_as_drawn(fig):
        drawn = paths[fmts.index("png")]
        bbox = _save_png_drawn(fig, drawn, tight)
    else:
        bbox = _fixed_layout(fig, tight)
    for fmt, path in zip(fmts, paths):
        if path == drawn:
            continue
        # no creation date in PDFs, so that re-running a configuration reproduces the file
        metadata = {"CreationDate": None} if fmt == "pdf" else None
        fig.savefig(path, format=fmt, bbox_inches=bbox, metadata=metadata)
    logger.debug("wrote %s", ", ".join(str(p) for p in paths))
    return paths


def _save(*args: Any, **kwargs: Any) -> list[Path]:
    """Call ``mva.evaluation.plots.save``, looked up at call time.

    Every plot function saves through the package's name, so that replacing it (the tests
    capture the drawn figures that way) reaches all of them, whichever module they live in.
    """
    from mva.evaluation import plots

    return plots.save(*args, **kwargs)


@contextmanager
def _figure(*args: Any, rc: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[Any]:
    """``plt.subplots`` inside the plot style; the figure is closed when the block ends.

    Saving must happen inside the block: tick labels pick up the style only when drawn.
    """
    with plt.style.context([mplhep.style.CMS, _RC, rc or {}]):
        fig, axes = plt.subplots(*args, **kwargs)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def _legend_fraction(ax: Axes, n_lines: int) -> float:
    """Fraction of the height of ``ax`` taken by an upper legend with ``n_lines`` rows."""
    size = FontProperties(size=plt.rcParams["legend.fontsize"]).get_size_in_points()
    height = ax.get_position().height * ax.figure.get_figheight()
    # a row is the text plus the label spacing; 0.3 in for the border padding
    needed = n_lines * 1.75 * size / 72.0 + 0.3
    return min(0.7, needed / max(height, 1e-3))


def _headroom(ax: Axes, ymax: float, n_lines: int, ymin: float = 0.0, log: bool = False) -> None:
    """Extend the y range above ``ymax`` so that an upper legend does not cover the data."""
    if not np.isfinite(ymax) or ymax <= ymin:
        return
    frac = _legend_fraction(ax, n_lines)
    if log:
        if ymin <= 0:
            return
        top = ymax * (ymax / ymin) ** (frac / (1.0 - frac))
    else:
        top = ymin + (ymax - ymin) / (1.0 - frac)
    ax.set_ylim(ymin, top)


def _legend(ax: Axes, **kwargs: Any) -> None:
    """``ax.legend`` unless nothing is labelled (matplotlib warns about an empty legend)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _legend_above(
    ax: Axes, handles: list[Any] | None = None, ncols: int = 2, **kwargs: Any
) -> None:
    """Legend in a box above the axes, for plots where no region is guaranteed free of data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    else:
        labels = [h.get_label() for h in handles]
    if handles:
        ax.legend(
            handles,
            labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.01),
            ncols=ncols,
            borderaxespad=0.0,
            **kwargs,
        )


def _thin(*coords: np.ndarray, max_points: int = _MAX_POINTS) -> np.ndarray:
    """Indices of at most ~``max_points`` points spread evenly along a curve's drawn length.

    Each coordinate is scaled to its range first, so the spacing is even on the plot; the
    first and last points are always kept.
    """
    n = len(coords[0])
    if n <= max_points:
        return np.arange(n)
    step2 = np.zeros(n - 1)
    for c in coords:
        c = np.asarray(c, dtype=float)
        finite = np.isfinite(c)
        span = float(np.ptp(c[finite])) if finite.any() else 0.0
        if span > 0:
            step2 += np.nan_to_num(np.diff(c) / span) ** 2
    arc = np.r_[0.0, np.cumsum(np.sqrt(step2))]
    if arc[-1] <= 0:
        idx = np.linspace(0, n - 1, max_points).astype(int)
    else:
        idx = np.searchsorted(arc, np.linspace(0.0, arc[-1], max_points))
    return np.unique(np.r_[0, np.clip(idx, 0, n - 1), n - 1])


def _array(x: Any, name: str) -> np.ndarray:
    """1-d float array; non-finite values are kept (plots drop them with a warning)."""
    return as_1d(x, name, finite=False)


def _weights(weights: Any, n: int) -> np.ndarray:
    """Weights of length ``n`` (unit weights for ``None``); non-finite values are kept."""
    return weights_or_ones(weights, n, finite=False)


_signal_mask = signal_mask


def _matrix(X: Any, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """``X`` as a 2-d floating array (float32 features stay float32: a float64 copy of a
    million events costs more than their histograms) and the variables' names."""
    arr = np.asarray(X)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"X must be two-dimensional, got shape {arr.shape}")
    if names is None:
        names = [f"x{j}" for j in range(arr.shape[1])]
    names = [str(n) for n in names]
    if len(names) != arr.shape[1]:
        raise ValueError(f"{len(names)} names for {arr.shape[1]} variables")
    return arr, names


def _histogram(x: np.ndarray, w: np.ndarray, edges: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``w`` and ``w**2`` in the bins ``edges`` (``numpy.histogram``'s bins: the last
    one includes its upper edge; values outside are dropped).

    Equally spaced edges (every histogram of the plots) are binned by arithmetic: numpy sorts
    the values for an array of edges, which costs more than the drawing for 10^5 events.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    nb = len(edges) - 1
    width = np.diff(edges)
    if nb < 1 or not np.allclose(width, width[0], rtol=1e-9, atol=0.0) or not width[0] > 0:
        h, _ = np.histogram(x, bins=edges, weights=w)
        h2, _ = np.histogram(x, bins=edges, weights=w * w)
        return h, h2
    inside = (x >= edges[0]) & (x <= edges[-1])
    xs, ws = x[inside], w[inside]
    idx = np.minimum(((xs - edges[0]) / width[0]).astype(np.int64), nb - 1)
    # the arithmetic bin can be one off next to an edge: compare with the edges themselves
    idx -= xs < edges[idx]
    idx += (xs >= edges[np.minimum(idx + 1, nb)]) & (idx < nb - 1)
    return np.bincount(idx, ws, nb), np.bincount(idx, ws * ws, nb)


def _unit_area(
    x: np.ndarray, w: np.ndarray, edges: np.ndarray, norm: float | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Weighted histogram divided by ``norm * bin width`` and its statistical error.

    ``norm`` defaults to the weight inside the range (unit area); ``None`` is returned where
    the normalisation is not positive.
    """
    h, h2 = _histogram(x, w, edges)
    total = float(h.sum()) if norm is None else float(norm)
    if not total > 0:
        return None
    scale = total * np.diff(edges)
    return h / scale, np.sqrt(h2) / scale


def _fmt_p(p: Any) -> str:
    return "n/a" if p is None or not np.isfinite(p) else f"{float(p):.3f}"


def _response_label(name: str) -> str:
    return f"{name} response" if name else "response"


