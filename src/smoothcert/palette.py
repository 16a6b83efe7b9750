"""One colour-blind-safe palette for every plot of the package (``smoothcert figures``,
``analyze --plot``, the demo), with line styles and markers that stay distinct in greyscale print.

The colours are Okabe & Ito's (2008) set, safe for the common colour-vision deficiencies; yellow
is left out (too light on white). Series ``i`` takes ``color(i)``, ``linestyle(i)`` and
``marker(i)``, so two series never differ by colour alone. No heavy imports: the CLI imports
this module at start-up.
"""

from __future__ import annotations

#: Okabe & Ito, "Color Universal Design" (2008)
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}

#: series colours in order of use (dark and light alternate, so greyscale prints separate them)
COLORS = tuple(
    OKABE_ITO[c]
    for c in ("blue", "vermillion", "bluish green", "reddish purple", "black", "orange", "sky blue")
)

#: dash patterns in order of use, visible at a legend's handle length of 3.5 em or more
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (3, 1, 1, 1, 1, 1)))

MARKERS = ("o", "s", "^", "D", "v", "P", "X")

#: neutral colour of reference lines and grids
GREY = "0.55"
GRID = "0.9"

#: the noise families, one fixed style each (the same in every figure)
FAMILY_COLORS = {
    "l2-family": OKABE_ITO["blue"],
    "linf-mixed": OKABE_ITO["vermillion"],
    "linf-pure": OKABE_ITO["bluish green"],
    "gaussian": OKABE_ITO["black"],
}
FAMILY_MARKERS = {"l2-family": "o", "linf-mixed": "s", "linf-pure": "^", "gaussian": "D"}


def color(i: int) -> str:
    """The colour of series ``i`` (cycling)."""
    return COLORS[i % len(COLORS)]


def linestyle(i: int):
    """The line style of series ``i`` (cycling)."""
    return LINESTYLES[i % len(LINESTYLES)]


def marker(i: int) -> str:
    """The marker of series ``i`` (cycling)."""
    return MARKERS[i % len(MARKERS)]


__all__ = [
    "OKABE_ITO",
    "COLORS",
    "LINESTYLES",
    "MARKERS",
    "GREY",
    "GRID",
    "FAMILY_COLORS",
    "FAMILY_MARKERS",
    "color",
    "linestyle",
    "marker",
]
