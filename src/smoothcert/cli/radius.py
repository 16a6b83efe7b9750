"""``smoothcert radius``: the certified radius for a given lower bound of p_A."""

from __future__ import annotations

import argparse
import json
import math

from ..certificates import DEFAULT_FAILURE_PROB, DEFAULT_SAMPLES, get_certificate
from ..errors import SmoothCertError
from ..noises import FAMILIES, make_noise


def add_noise_arguments(parser: argparse.ArgumentParser, dim: bool = True) -> None:
    """The options that define a noise (shared by the commands that take one)."""
    g = parser.add_argument_group("noise")
    g.add_argument("--noise", choices=sorted(FAMILIES), default="gaussian",
                   help="smoothing noise family (default: gaussian)")
    if dim:
        g.add_argument("--dim", type=int, required=True, help="input dimension d")
    g.add_argument("--k", type=float, default=0.0, help="shape parameter k (0 <= k < d)")
    s = g.add_mutually_exclusive_group(required=True)
    s.add_argument("--sigma", type=float, help="scale parameter sigma of the noise")
    s.add_argument("--sigma0", type=float,
                   help="match a Gaussian N(0, sigma0^2): sigma = sqrt((d-1)/(d-1-k)) sigma0")
    g.add_argument("--norm", choices=["l2", "linf"], default="l2", help="threat model")
    g.add_argument("--cert-samples", type=int, default=DEFAULT_SAMPLES,
                   help="Monte Carlo samples of a certificate table (l-inf families)")
    g.add_argument("--cert-failure-prob", type=float, default=DEFAULT_FAILURE_PROB,
                   help="failure probability of a Monte Carlo certificate table")


def add_parser(sub) -> None:
    p = sub.add_parser("radius", help="certified radius for a lower bound P of p_A",
                       description="Print the certified radius of the smoothed classifier for a "
                                   "lower bound P of the top-class probability p_A.")
    add_noise_arguments(p)
    p.add_argument("--p", type=float, required=True, help="lower bound of p_A, in (0, 1)")
    p.add_argument("--alpha", type=float, default=None,
                   help="confidence level of P (reported only: P is taken as given)")
    p.add_argument("--samples", type=int, default=None, help="alias of --cert-samples")
    p.add_argument("--seed", type=int, default=0, help="seed of a Monte Carlo certificate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise SmoothCertError(f"alpha must lie in (0, 1), got {args.alpha}")
    noise = make_noise(args.noise, args.dim, k=args.k, sigma=args.sigma, sigma0=args.sigma0)
    cert = get_certificate(noise, args.norm, samples=args.samples or args.cert_samples,
                           failure_prob=args.cert_failure_prob, seed=args.seed, progress=True)
    if cert.method == "quadrature":
        radius = cert.radius(args.p, exact=True)
    else:
        radius = cert.radius(args.p)
    failure = cert.failure_prob + (args.alpha or 0.0)
    if args.json:
        out = {"radius": radius, "p": args.p, **cert.describe(),
               "alpha": args.alpha, "total_failure_prob": failure,
               "confidence": 1.0 - failure, "certified": radius > 0}
        print(json.dumps(out))
    else:
        note = (f"holds with probability >= {1 - failure:.6g}" if failure else "exact")
        print(f"{radius:.6g}")
        if not math.isfinite(radius) or radius == 0:
            note = "not certified at any positive radius; " + note
        import sys

        print(f"# {noise!r}, {args.norm} radius, method {cert.method}, {note}", file=sys.stderr)
    return 0
