"""``smoothcert radius``: the certified radius for a given lower bound of p_A."""

from __future__ import annotations

import json
import math

from ..certificates import get_certificate
from ..checks import check_alpha, check_samples, check_seed
from ..noises import make_noise
from .common import add_noise_arguments


def add_parser(sub) -> None:
    p = sub.add_parser(
        "radius",
        help="certified radius for a lower bound P of p_A",
        description="Print the certified radius of the smoothed classifier for a "
        "lower bound P of the top-class probability p_A.",
    )
    add_noise_arguments(p, dim=True)
    p.add_argument("--p", type=float, required=True, help="lower bound of p_A, in (0, 1)")
    p.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="confidence level of P (reported only: P is taken as given)",
    )
    p.add_argument("--samples", type=int, default=None, help="alias of --cert-samples")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of a Monte Carlo certificate (default: 0)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.alpha is not None:
        check_alpha(args.alpha)
    check_seed(args.seed)
    samples = check_samples(
        "--samples" if args.samples is not None else "--cert-samples",
        args.cert_samples if args.samples is None else args.samples,
        100,
    )
    noise = make_noise(args.noise, args.dim, k=args.k, sigma=args.sigma, sigma0=args.sigma0)
    cert = get_certificate(
        noise,
        args.norm,
        samples=samples,
        failure_prob=args.cert_failure_prob,
        seed=args.seed,
        progress=True,
    )
    radius = cert.radius(args.p, exact=True)
    failure = cert.failure_prob + (args.alpha or 0.0)
    if args.json:
        out = {
            "radius": radius,
            "p": args.p,
            **cert.describe(),
            "alpha": args.alpha,
            "total_failure_prob": failure,
            "confidence": 1.0 - failure,
            "certified": radius > 0,
        }
        print(json.dumps(out))
    else:
        note = f"holds with probability >= {1 - failure:.6g}" if failure else "exact"
        print(f"{radius:.6g}")
        if not math.isfinite(radius) or radius == 0:
            note = "not certified at any positive radius; " + note
        import sys

        print(f"# {noise!r}, {args.norm} radius, method {cert.method}, {note}", file=sys.stderr)
    return 0
