"""Which engine certifies a noise: each noise names its engine (``noise.certificate_engine``, a
string, so that the noises never import the certificates) and :data:`ENGINES` maps the name to
the function that builds the certificate.

==================  =======================================  ====================  ===========
noise               engine                                   failure probability   method
==================  =======================================  ====================  ===========
gaussian, or k = 0  Cohen's closed form sigma Phi^-1(p)      0                     closed-form
                    (:mod:`.gaussian`)
l2-family           exact 1-D quadrature (:mod:`.quadrature`  0 (numerical margin)  quadrature
                    on :mod:`.exact_l2`; roots of ell in
                    d = 1)
linf-mixed/-pure    Monte Carlo + DKW band                   ``failure_prob``      monte-carlo
(any other noise)   (:mod:`.montecarlo`)
==================  =======================================  ====================  ===========

A new noise family is one noise module (with its ``certificate_engine``); a new engine is one
module here plus its line in :data:`ENGINES`.
"""

from __future__ import annotations

from ..errors import SmoothCertError
from ..noises import Noise
from .base import Certificate
from .gaussian import closed_form_certificate
from .montecarlo import monte_carlo_certificate
from .quadrature import quadrature_certificate

DEFAULT_SAMPLES = 1_000_000
DEFAULT_FAILURE_PROB = 1e-3

#: engine name (a noise's ``certificate_engine``) -> builder(noise, norm, **options)
ENGINES = {
    "closed-form": closed_form_certificate,
    "quadrature": quadrature_certificate,
    "monte-carlo": monte_carlo_certificate,
}


def get_certificate(
    noise: Noise,
    norm: str = "l2",
    *,
    samples: int = DEFAULT_SAMPLES,
    failure_prob: float = DEFAULT_FAILURE_PROB,
    seed: int = 0,
    n_radii: int = 256,
    device=None,
    cache: bool = True,
    progress: bool = False,
) -> Certificate:
    """The certificate of ``noise`` against ``norm`` attacks (cached on disk when a table).

    ``samples``, ``failure_prob``, ``seed`` and ``n_radii`` only matter for Monte Carlo tables:
    with probability >= 1 - failure_prob the whole table is sound."""
    if not isinstance(noise, Noise):
        raise SmoothCertError(f"noise must be a smoothcert Noise, got {type(noise).__name__}")
    noise.check_certifiable(norm)
    build = ENGINES.get(noise.certificate_engine)
    if build is None:
        raise SmoothCertError(
            f"the {noise.name} noise names an unknown certificate engine "
            f"{noise.certificate_engine!r}; known: {', '.join(ENGINES)}"
        )
    return build(
        noise,
        norm,
        samples=samples,
        failure_prob=failure_prob,
        seed=seed,
        n_radii=n_radii,
        device=device,
        cache=cache,
        progress=progress,
    )


def certified_radius(noise: Noise, p, norm: str = "l2", **kwargs):
    """Shortcut: ``get_certificate(noise, norm, **kwargs).radius(p)``."""
    return get_certificate(noise, norm, **kwargs).radius(p)
