"""Each figure's public function and its compute_ function declare the same parameters."""

from __future__ import annotations

import inspect

import pytest

from smoothcert import figures

PAIRS = [
    ("radius_density", "compute_radius_density"),
    ("theorem3", "compute_theorem3"),
    ("theorem4", "compute_theorem4"),
    ("tradeoff", "compute_tradeoff"),
    ("pareto_linf", "compute_pareto_linf"),
]


def _params(func):
    return [
        (p.name, p.kind, p.default, p.annotation)
        for p in inspect.signature(inspect.unwrap(func)).parameters.values()
    ]


@pytest.mark.parametrize("public, compute", PAIRS)
def test_figure_and_compute_declare_the_same_parameters(public, compute):
    """A figure function (``outdir`` then the keywords it passes on) declares the keywords of
    its compute_ function with the same defaults, so that the two signatures written side by
    side in each module cannot drift apart."""
    outer, inner = _params(getattr(figures, public)), _params(getattr(figures, compute))
    assert outer[0][0] == "outdir"
    assert outer[1:] == inner
