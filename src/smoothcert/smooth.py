"""The smoothed classifier g(x) = argmax_c P(f(x + z) = c), z ~ noise: prediction and certification.

A generalisation of ``code/core.py`` of Cohen et al. (2019) (github locuslab/smoothing) to any
noise of :mod:`smoothcert.noises` and the l2 / l-infinity threat models of
:mod:`smoothcert.certificates`:

- :meth:`Smooth.predict` is PREDICT: the class, or :data:`Smooth.ABSTAIN` when the two-sided
  binomial test of the top count against the runner-up (Hung & Fithian, 2019) does not reject
  at level ``alpha``. With probability >= 1 - alpha the class returned is g(x).
- :meth:`Smooth.certify` is CERTIFY: ``n0`` samples select the class c_A, ``n`` fresh samples give
  the one-sided Clopper-Pearson lower bound pA_lower of p_A at level ``alpha``, and the radius is
  the certificate's radius at pA_lower (Gaussian: sigma Phi^-1(pA_lower), as the reference).
- :meth:`Smooth.certify_at` answers "is x certified at radius r" (the question of the paper's
  Algorithm 2) with the same samples and bound.
- :meth:`Smooth.certify_adaptive` and :meth:`Smooth.predict_adaptive` are their sequential
  versions: they sample in growing batches and stop as soon as the answer is decided, with
  time-uniform bounds (:mod:`smoothcert.sequential`) and the same guarantees.

Noise is added in input space (x in [0, 1], before the model's own normalisation layer); x may
have any shape with ``x.numel() == noise.dim``.

Confidence. A certificate (class, radius) holds with probability at least
``1 - alpha - certificate.failure_prob`` over the sampling: ``alpha`` bounds the failure of the
per-input Clopper-Pearson bound, and ``failure_prob`` (0 for the exact Gaussian and l2-family
certificates) that of the Monte Carlo certificate table of the l-infinity families, one table
shared by every input (union bound). See :meth:`Smooth.confidence_note`.

Reproducibility. Noise is drawn in blocks of :func:`noise_block` samples (a size fixed by the
dimension alone), block ``j`` with its own generator seeded from (base seed, phase, j); the base
seed is the integer given as ``generator``, or one draw of the given ``torch.Generator``.
Results therefore do not depend on ``batch_size`` (up to floating-point effects inside the
model), and an integer seed fixes them on a given device type (CPU and CUDA generators differ).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats

from .device import check_device
from .errors import SmoothCertError
from .noises import Noise
from .noises.base import check_norm
from .sequential import (
    DEFAULT_FORECAST_LEVEL,
    DEFAULT_RTOL,
    AdaptiveCertificate,
    AdaptivePrediction,
    UnionBoundCP,
    _check_alpha,
    _check_int,
    check_radii,
    check_rtol,
    cp_lower,
    cp_upper,
    grid_bound,
    grid_index,
    grid_thresholds,
    look_schedule,
    run_certification,
)

_MASK64 = (1 << 64) - 1
_RADIUS_MEMO_SIZE = 1 << 16


def derive_seed(*parts: int) -> int:
    """A stable 63-bit seed mixed from integers (splitmix64 over the parts), e.g.
    ``derive_seed(seed, idx)`` for input ``idx`` of a run: independent of run order or sharding."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & _MASK64)) & _MASK64
        h = (h + 0x9E3779B97F4A7C15) & _MASK64
        z = h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        h = z ^ (z >> 31)
    return h >> 1


def noise_block(dim: int) -> int:
    """Noise samples drawn with one generator: about 16 MiB of float32, 64 to 4096 samples.
    It depends on the dimension only, so that results do not depend on ``batch_size``
    (changing this function changes every seeded result)."""
    return max(64, min(4096, (1 << 22) // max(1, int(dim))))


def lower_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound of a binomial proportion: the
    reference's ``proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]``."""
    if n_a <= 0:
        return 0.0
    return float(stats.beta.ppf(alpha, n_a, n - n_a + 1))


def upper_confidence_bound(n_b: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson upper bound of a binomial proportion."""
    if n_b >= n:
        return 1.0
    return float(stats.beta.ppf(1.0 - alpha, n_b + 1, n - n_b))


def _certificate_options() -> frozenset[str]:
    """The keyword options of ``get_certificate`` that :class:`Smooth` passes on."""
    import inspect

    from .certificates import get_certificate

    params = inspect.signature(get_certificate).parameters.values()
    return frozenset(p.name for p in params if p.kind == p.KEYWORD_ONLY) - {"device"}


def _model_device(model) -> torch.device | None:
    if isinstance(model, torch.nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return None


class Smooth:
    """A smoothed classifier g built from a base classifier f and a smoothing noise.

    :param base_classifier: maps a batch ``(m, *x.shape)`` to scores ``(m, num_classes)``
        (any callable; an ``nn.Module`` is put in eval mode, as the reference does)
    :param num_classes: number of classes
    :param noise: a :class:`smoothcert.noises.Noise` with ``dim == x.numel()``
    :param device: where noise is drawn and the model is run; default: the device of the model's
        parameters, else cpu
    :param norm: threat model of :meth:`certify` ("l2" or "linf"); default: the norm of
        ``certificate`` when one is given, else "l2"
    :param certificate: a ready :class:`smoothcert.certificates.Certificate` for ``noise``;
        default: ``get_certificate(noise, norm, device=device, **certificate_kwargs)``, built on
        first use (predict never needs it)
    """

    #: returned as the class when the smoothed classifier abstains
    ABSTAIN = -1

    def __init__(
        self,
        base_classifier: Callable,
        num_classes: int,
        noise: Noise,
        device=None,
        norm: str | None = None,
        certificate=None,
        **certificate_kwargs,
    ):
        if not callable(base_classifier):
            raise SmoothCertError("base_classifier must be callable (a torch module or function)")
        if not isinstance(noise, Noise):
            raise SmoothCertError(f"noise must be a smoothcert Noise, got {type(noise).__name__}")
        self.base_classifier = base_classifier
        self.num_classes = _check_int("num_classes", num_classes)
        self.noise = noise
        model_device = _model_device(base_classifier)
        try:
            self.device = (
                torch.device(device)
                if device is not None
                else (model_device or torch.device("cpu"))
            )
        except (RuntimeError, TypeError):
            raise SmoothCertError(f"unknown device {device!r}") from None
        check_device(self.device)
        if model_device is not None and model_device.type != self.device.type:
            raise SmoothCertError(
                f"the model is on {model_device} but device is {self.device}: "
                "move the model or pass the same device"
            )
        unknown = sorted(set(certificate_kwargs) - _certificate_options())
        if unknown:
            raise SmoothCertError(
                f"unknown certificate option(s) {', '.join(unknown)}; "
                f"expected {', '.join(sorted(_certificate_options()))}"
            )
        if certificate is not None:
            if not all(hasattr(certificate, a) for a in ("noise", "norm", "radius")):
                raise SmoothCertError(
                    "certificate must be a smoothcert Certificate, got "
                    f"{type(certificate).__name__}"
                )
            if certificate.noise != noise:
                raise SmoothCertError(
                    f"the certificate is for {certificate.noise!r}, not for {noise!r}"
                )
            if norm is not None and check_norm(norm) != certificate.norm:
                raise SmoothCertError(
                    f"norm {norm!r} differs from the certificate's norm {certificate.norm!r}"
                )
            norm = certificate.norm
        self.norm = check_norm(norm or "l2")
        self._certificate = certificate
        self._certificate_kwargs = certificate_kwargs
        self._radius_memo: dict = {}

    # ------------------------------------------------------------------ certificate
    @property
    def certificate(self):
        """The certificate turning a bound of p_A into a radius (built once, on first use)."""
        if self._certificate is None:
            from .certificates import get_certificate

            self.noise.check_certifiable(self.norm)
            kwargs = {"device": self.device, **self._certificate_kwargs}
            self._certificate = get_certificate(self.noise, self.norm, **kwargs)
        return self._certificate

    def failure_prob(self, alpha: float) -> float:
        """Probability that a certificate of :meth:`certify` at level ``alpha`` is wrong: alpha
        plus the failure probability of a Monte Carlo certificate table (0 when exact)."""
        return _check_alpha(alpha) + float(getattr(self.certificate, "failure_prob", 0.0))

    def confidence_note(self, alpha: float, bilateral: bool = False) -> str:
        """One line saying with which probability the certificates hold."""
        alpha = _check_alpha(alpha)
        cert = self.certificate
        table = float(getattr(cert, "failure_prob", 0.0))
        how = (
            "alpha/2 for the Clopper-Pearson lower bound of p_A + alpha/2 for the upper bound "
            "of the runner-up"
            if bilateral
            else "one-sided Clopper-Pearson bound of p_A"
        )
        note = (
            f"each certified radius ({self.norm}, {cert.method} certificate of {self.noise!r}) "
            f"holds with probability >= {1 - alpha - table:.6g}: alpha = {alpha:g} per input "
            f"({how})"
        )
        if table:
            note += f" + {table:g} for the Monte Carlo certificate table, shared by all inputs"
        return note

    def radius(self, p_a: float, p_b: float | None = None) -> float:
        """The certified radius at the lower bound ``p_a`` of p_A (the certificate's most
        precise one, ``exact=True``), or the bilateral radius with the runner-up's upper bound
        ``p_b``; memoised (one table refinement per distinct bound)."""
        key = (p_a, p_b)
        r = self._radius_memo.get(key)
        if r is None:
            if p_b is None:
                r = float(self.certificate.radius(p_a, exact=True))
            else:
                r = float(self.certificate.bilateral_radius(p_a, p_b))
            if len(self._radius_memo) >= _RADIUS_MEMO_SIZE:
                self._radius_memo.clear()
            self._radius_memo[key] = r
        return r

    # ------------------------------------------------------------------ sampling
    def _check_input(self, x) -> torch.Tensor:
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError):
            raise SmoothCertError(f"x must be a tensor, got {type(x).__name__}") from None
        if x.numel() != self.noise.dim:
            raise SmoothCertError(
                f"input of shape {tuple(x.shape)} has {x.numel()} values but the noise has "
                f"dimension {self.noise.dim}"
            )
        if not x.is_floating_point():
            x = x.to(torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise SmoothCertError("input contains NaN or infinite values")
        return x.to(self.device)

    def _base_seed(self, generator) -> int:
        if generator is None:
            return int(torch.randint(0, 2**62, (1,)).item())
        if isinstance(generator, torch.Generator):
            if generator.device.type != self.device.type:
                raise SmoothCertError(
                    f"the generator is on {generator.device} but device is {self.device}"
                )
            return int(
                torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()
            )
        if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
            return int(generator)
        raise SmoothCertError(
            f"generator must be a torch.Generator or an integer seed, "
            f"got {type(generator).__name__}"
        )

    def _noise_blocks(self, num: int, seed: int, dtype):
        block = noise_block(self.noise.dim)
        for j, start in enumerate(range(0, num, block)):
            gen = torch.Generator(device=self.device).manual_seed(derive_seed(seed, j))
            yield self.noise.sample(
                min(block, num - start), generator=gen, device=self.device, dtype=dtype
            )

    def _classify(self, batch: torch.Tensor) -> torch.Tensor:
        scores = self.base_classifier(batch)
        if not isinstance(scores, torch.Tensor) or scores.shape != (
            batch.shape[0],
            self.num_classes,
        ):
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
            raise SmoothCertError(
                f"the base classifier returned {shape} for a batch of "
                f"{batch.shape[0]}; expected ({batch.shape[0]}, "
                f"{self.num_classes}) scores"
            )
        if scores.dtype == torch.bool or scores.is_complex():
            raise SmoothCertError(
                f"the base classifier returned scores of dtype {scores.dtype}; "
                "expected real numbers (cast a one-hot output to float)"
            )
        if bool(torch.isnan(scores).any()):
            raise SmoothCertError("the base classifier returned NaN scores")
        return scores.argmax(1)

    def sample_counts(self, x, num: int, batch_size: int, generator=None) -> np.ndarray:
        """Counts of the base classifier's predictions at ``num`` noisy copies of ``x``:
        an int64 array of length ``num_classes``. ``batch_size`` bounds the memory."""
        x = self._check_input(x)
        num = _check_int("number of samples", num)
        batch_size = _check_int("batch_size", batch_size)
        return self._counts(x, num, batch_size, self._base_seed(generator))

    def _counts(self, x: torch.Tensor, num: int, batch_size: int, seed: int) -> np.ndarray:
        if isinstance(self.base_classifier, torch.nn.Module):
            self.base_classifier.eval()
        flat = x.reshape(1, -1)
        counts = torch.zeros(self.num_classes, dtype=torch.int64, device=self.device)
        pending: list[torch.Tensor] = []
        n_pending = 0
        with torch.no_grad():
            blocks = self._noise_blocks(num, seed, x.dtype)
            done = False
            while not done:
                block = next(blocks, None)
                if block is None:
                    done = True
                else:
                    pending.append(block)
                    n_pending += block.shape[0]
                while n_pending >= batch_size or (done and n_pending):
                    z = torch.cat(pending) if len(pending) > 1 else pending[0]
                    m = min(batch_size, n_pending)
                    batch = (flat + z[:m]).reshape(m, *x.shape)
                    counts += torch.bincount(self._classify(batch), minlength=self.num_classes)
                    pending = [z[m:]] if m < n_pending else []
                    n_pending -= m
        return counts.cpu().numpy()

    # ------------------------------------------------------------------ PREDICT
    def predict(self, x, n: int, alpha: float, batch_size: int, generator=None) -> int:
        """The smoothed prediction g(x) or :data:`ABSTAIN`: with probability >= 1 - alpha the
        class returned equals g(x). ``generator``: a torch.Generator on the device, or an int
        seed (fixed results); None draws from torch's global generator."""
        x = self._check_input(x)
        n = _check_int("n", n)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size)
        counts = self._counts(x, n, batch_size, derive_seed(self._base_seed(generator), 0))
        order = np.argsort(-counts, kind="stable")
        c1 = int(counts[order[0]])
        c2 = int(counts[order[1]]) if counts.size > 1 else 0
        if stats.binomtest(c1, c1 + c2, 0.5).pvalue > alpha:
            return Smooth.ABSTAIN
        return int(order[0])

    # ------------------------------------------------------------------ CERTIFY
    def _check_certify(self, x, n0, n, alpha, batch_size, bilateral: bool):
        """The arguments of :meth:`certify`, checked (and the certificate built, so that an
        uncertifiable norm fails before any sampling): ``(x, n0, n, alpha, batch_size)``."""
        x = self._check_input(x)
        n0, n = _check_int("n0", n0), _check_int("n", n)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size)
        if self.certificate.method == "monte-carlo" and bilateral:
            raise SmoothCertError(
                "the bilateral certificate needs bound values V(p, r), which "
                "a Monte Carlo certificate table does not give; drop bilateral"
            )
        return x, n0, n, alpha, batch_size

    def _select(self, x: torch.Tensor, n0: int, batch_size: int, seed: int) -> int:
        """SELECT: the top class c_A of ``n0`` noisy copies of x (seed phase 1)."""
        return int(np.argmax(self._counts(x, n0, batch_size, derive_seed(seed, 1))))

    def _estimate(self, x: torch.Tensor, n: int, batch_size: int, seed: int) -> np.ndarray:
        """ESTIMATE: class counts of ``n`` fresh noisy copies of x (seed phase 2)."""
        return self._counts(x, n, batch_size, derive_seed(seed, 2))

    def certify(
        self,
        x,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generator=None,
        bilateral: bool = False,
    ) -> tuple[int, float, float]:
        """Certify g around ``x``: returns ``(class, radius, pA_lower)``; with probability
        >= 1 - alpha - certificate.failure_prob the class is g(x) and g predicts it on the whole
        ``norm`` ball of that radius. Abstention: ``(ABSTAIN, 0.0, pA_lower)``.

        ``bilateral=True`` uses the multi-class certificate of appendix D: alpha is split into
        alpha/2 for the lower bound pA_lower of p_A and alpha/2 for an upper bound pB_upper of
        max_{b != c_A} p_b, the Clopper-Pearson upper bound at the largest count among the other
        classes. That is valid without a union bound over the classes: for the (fixed, given the
        selection samples) class b* with the largest p_b, p_b* <= U(n_b*) <= U(max_b n_b) except
        with probability alpha/2, U being increasing. The radius is
        ``certificate.bilateral_radius(pA_lower, pB_upper)``, never below the binary radius at
        the same pA_lower; the class is returned when pA_lower >= 1/2 or pA_lower > pB_upper.
        The total failure probability is unchanged (alpha + failure_prob). Not available with
        Monte Carlo certificate tables (they give radii, not bound values)."""
        c_a, radius, p_a, _ = self.certify_detailed(
            x, n0, n, alpha, batch_size, generator, bilateral
        )
        return c_a, radius, p_a

    def certify_detailed(
        self,
        x,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generator=None,
        bilateral: bool = False,
    ) -> tuple[int, float, float, float | None]:
        """:meth:`certify` plus the upper bound pB_upper of the runner-up (None unless
        ``bilateral``): ``(class, radius, pA_lower, pB_upper)``. The algorithm CERTIFY of Cohen
        et al.: select c_A with n0 samples, estimate with n fresh ones, bound p_A from below,
        then the radius or abstain."""
        x, n0, n, alpha, batch_size = self._check_certify(x, n0, n, alpha, batch_size, bilateral)
        seed = self._base_seed(generator)
        c_a = self._select(x, n0, batch_size, seed)
        counts = self._estimate(x, n, batch_size, seed)
        n_a = int(counts[c_a])
        if bilateral:  # appendix D: alpha/2 for p_A, alpha/2 for the runner-up
            others = np.delete(counts, c_a)
            n_b = int(others.max()) if others.size else 0
            p_a = lower_confidence_bound(n_a, n, alpha / 2)
            p_b = upper_confidence_bound(n_b, n, alpha / 2)
            if p_a < 0.5 and p_a <= p_b:
                return Smooth.ABSTAIN, 0.0, p_a, p_b
            return c_a, self.radius(p_a, p_b), p_a, p_b
        p_a = lower_confidence_bound(n_a, n, alpha)
        if p_a < 0.5:
            return Smooth.ABSTAIN, 0.0, p_a, None
        return c_a, self.radius(p_a), p_a, None

    def certify_at(
        self, x, radius: float, n0: int, n: int, alpha: float, batch_size: int, generator=None
    ) -> tuple[int, bool, float]:
        """Is g certified at ``radius`` around ``x`` (Algorithm 2's question)? Returns
        ``(class or ABSTAIN, certified, pA_lower)``, with the samples and bound of
        :meth:`certify`: with the same generator, ``certified`` is ``radius <= certify's radius``
        (and False on abstention)."""
        try:
            r = float(radius)
        except (TypeError, ValueError):
            raise SmoothCertError(f"radius must be a number >= 0, got {radius!r}") from None
        if not (math.isfinite(r) and r >= 0):
            raise SmoothCertError(f"radius must be a finite number >= 0, got {radius}")
        x, n0, n, alpha, batch_size = self._check_certify(x, n0, n, alpha, batch_size, False)
        seed = self._base_seed(generator)
        c_a = self._select(x, n0, batch_size, seed)
        p_a = lower_confidence_bound(int(self._estimate(x, n, batch_size, seed)[c_a]), n, alpha)
        if p_a < 0.5:
            return Smooth.ABSTAIN, False, p_a
        certified = bool(self.certificate.certifies(p_a, r)) or self.radius(p_a) >= r
        return c_a, certified, p_a

    # ------------------------------------------------------------------ sequential
    def certify_adaptive(
        self,
        x,
        n0: int,
        n_max: int,
        alpha: float,
        batch_size: int,
        radii=None,
        generator=None,
        rtol: float = DEFAULT_RTOL,
    ) -> AdaptiveCertificate:
        """Sequential CERTIFY: the certificate of :meth:`certify` with far fewer samples.

        ``n0`` samples select c_A (the samples of :meth:`certify`); estimation samples are then
        drawn at the looks of :func:`smoothcert.sequential.grid_bound` (with ``radii``: the
        grid-aware schedule of :func:`smoothcert.sequential.grid_look_schedule`, which adds
        the looks where all-success draws first certify each grid threshold; without: the
        geometric :func:`smoothcert.sequential.look_schedule`, 64 then x1.5 each; both end at
        the budget ``n_max``; GPU batches of at most ``batch_size``) and classified, and the
        time-uniform bound :class:`smoothcert.sequential.UnionBoundCP` at level ``alpha``
        gives pA_lower and pA_upper at each look. The estimation samples are those of
        :meth:`certify` with the same generator: the first n of them are those of a fixed-n
        certify when n = n_max, or a multiple of ``noise_block``.

        Stopping (:func:`smoothcert.sequential.run_certification`):

        - ``radii`` (a grid, strictly increasing): thresholds t_j = certificate.threshold(r_j)
          (upper bounds of the smallest p_A certifying r_j); stop as soon as the largest
          certified grid index j = max{j : t_j < pA_lower} is decided: j is the last one, or
          t_{j+1} is ruled out (even if the remaining draws succeeded at the forecast rate,
          no later lower bound would exceed it; this covers "rate <= t_{j+1}" and "unreachable
          within n_max"; the rate is the fixed-n Clopper-Pearson upper bound at level
          :data:`smoothcert.sequential.DEFAULT_FORECAST_LEVEL`, capped by pA_upper: it only
          decides when to stop). The radius returned is exactly r_j (0 if none). The
          grid only decides grid radii: add 0 to it to decide the prediction itself
          (``radii=[r]`` answers Algorithm 2's question for r).
        - no ``radii``: the radius at pA_lower (``certificate.radius`` with the exact refinement
          of :meth:`certify`); stop when the radius at the projected lower bound (same
          projection) is at most (1 + ``rtol``) times the current one; ``rtol`` defaults to
          0.05 (the radius then ends 1-2 % below fixed-N certify's, with 1.5-3.5x fewer
          samples; a grid saves far more).
        - both: abstain early when pA_upper < 1/2 (or 1/2 is out of reach); stop at n_max.

        Validity. The certificate is wrong only if pA_lower > p_A at the stopping time (then
        c_A and every radius certified at pA_lower are right: pA_lower <= p_A, t_j <
        pA_lower, radius monotone). Given the selection, the estimation draws are i.i.d.
        Bernoulli(p_A) (fresh seeds), and the union bound over the scheduled looks makes
        P(exists look: pA_lower > p_A) <= alpha, so the probability holds at any stopping time
        whatever the rule: the upper bound and the projections only choose when to stop and
        need no share of alpha (a wrong upper bound stops early, which certifies less). Total
        failure probability alpha + certificate.failure_prob, as :meth:`certify`.

        Returns an :class:`smoothcert.sequential.AdaptiveCertificate` (prediction, radius,
        pA_lower, pA_upper, samples = n0 + estimation samples, reason)."""
        x = self._check_input(x)
        n0 = _check_int("n0", n0)
        n_max = _check_int("n_max", n_max)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size)
        rtol = check_rtol(rtol)
        grid = None if radii is None else check_radii(radii)
        cert = self.certificate  # fail on an uncertifiable norm before sampling
        thresholds = None if grid is None else grid_thresholds(cert, grid)
        base = self._base_seed(generator)
        c_a = self._select(x, n0, batch_size, base)
        cs = grid_bound(alpha, n_max, thresholds)
        stream = _SampleStream(self, x, n_max, batch_size, derive_seed(base, 2))
        stop = run_certification(
            cs,
            cs.looks,
            lambda m: int(stream.counts(m)[c_a]),
            thresholds,
            self.radius,
            rtol,
            None if thresholds is None else DEFAULT_FORECAST_LEVEL,
        )
        samples = n0 + stream.used
        lo, up = stop.lower, stop.upper
        if lo < 0.5:
            return AdaptiveCertificate(Smooth.ABSTAIN, 0.0, lo, up, samples, stop.reason)
        if grid is None:
            radius = self.radius(lo)
        else:
            j = grid_index(thresholds, lo)
            radius = float(grid[j]) if j >= 0 else 0.0
        return AdaptiveCertificate(c_a, radius, lo, up, samples, stop.reason)

    def predict_adaptive(
        self, x, n_max: int, alpha: float, batch_size: int, generator=None
    ) -> AdaptivePrediction:
        """Sequential PREDICT: the top class as soon as it is decided, :data:`ABSTAIN` when the
        budget ``n_max`` is spent (or a decision is out of reach); with probability >= 1 - alpha
        the class returned is g(x), as :meth:`predict` (whose samples it draws).

        At each look n_k of :func:`smoothcert.sequential.look_schedule` (levels alpha_k of
        :class:`smoothcert.sequential.UnionBoundCP`, summing to alpha), the leader a (largest
        count) is returned when, for every other class b, the Clopper-Pearson lower bound at
        level alpha_k / (K - 1) (K classes) of the share of a among the draws in {a, b}
        exceeds 1/2.

        Validity. Let c* = g(x) (any top class). Returning a != c* at look k requires the test
        of a against c* to pass. Given the positions of the draws that fall in {a, c*} among
        the first n_k, their labels are i.i.d. with P(a) = p_a / (p_a + p_c*) <= 1/2, so that
        test passes with probability <= alpha_k / (K - 1). The leader is data-dependent, so
        the union bound runs over the K - 1 classes a != c* and the looks: P(wrong class)
        <= sum_k sum_a alpha_k / (K - 1) = alpha. Abstaining is never wrong, so the early
        abstention rules need no share of alpha."""
        x = self._check_input(x)
        n_max = _check_int("n_max", n_max)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size)
        looks = look_schedule(n_max)
        levels = UnionBoundCP(alpha, looks).alphas / max(1, self.num_classes - 1)
        stream = _SampleStream(
            self, x, n_max, batch_size, derive_seed(self._base_seed(generator), 0)
        )
        counts = np.zeros(self.num_classes, dtype=np.int64)
        n = 0
        for k, m in enumerate(looks.tolist()):
            counts += stream.counts(m - n)
            n = m
            a = int(np.argmax(counts))
            n_a = int(counts[a])
            others = np.unique(np.delete(counts, a))
            if others.size == 0 or (
                n_a > 0 and float(np.min(cp_lower(n_a, n_a + others, levels[k]))) > 0.5
            ):
                return AdaptivePrediction(a, stream.used, "decided")
            if k == looks.size - 1:
                return AdaptivePrediction(Smooth.ABSTAIN, stream.used, "budget")
            # forecast: the pair (a, runner-up) keeps its share of the draws and a its share of
            # the pair at the upper bound; no later test passing -> abstain now (always valid)
            n_b = int(others[-1])
            pair = n_a + n_b
            q_up = float(cp_upper(n_a, pair, levels[k])) if pair else 1.0
            later = looks[k + 1 :]
            m_pair = np.maximum(pair * later / n, pair + 1)
            best = cp_lower(
                np.minimum(n_a + q_up * (m_pair - pair), m_pair), m_pair, levels[k + 1 :]
            )
            if not np.max(best) > 0.5:
                return AdaptivePrediction(Smooth.ABSTAIN, stream.used, "decision out of reach")
        raise AssertionError("unreachable: the last look always returns")


class _SampleStream:
    """The noisy copies of x that ``Smooth._counts(x, total, batch_size, seed)`` classifies (the
    same blocks, hence the same noise), classified m at a time in batches of <= batch_size;
    ``used`` counts the forward passes."""

    def __init__(self, smooth: Smooth, x: torch.Tensor, total: int, batch_size: int, seed: int):
        self.smooth, self.x, self.batch_size = smooth, x, batch_size
        self.flat = x.reshape(1, -1)
        self.blocks = smooth._noise_blocks(total, seed, x.dtype)
        self.pending: list[torch.Tensor] = []
        self.n_pending = 0
        self.used = 0
        if isinstance(smooth.base_classifier, torch.nn.Module):
            smooth.base_classifier.eval()

    def counts(self, m: int) -> np.ndarray:
        """Class counts of the next ``m`` draws."""
        counts = torch.zeros(self.smooth.num_classes, dtype=torch.int64, device=self.smooth.device)
        remaining = m
        with torch.no_grad():
            while remaining > 0:
                k = min(self.batch_size, remaining)
                while self.n_pending < k:
                    block = next(self.blocks)
                    self.pending.append(block)
                    self.n_pending += block.shape[0]
                z = torch.cat(self.pending) if len(self.pending) > 1 else self.pending[0]
                batch = (self.flat + z[:k]).reshape(k, *self.x.shape)
                counts += torch.bincount(
                    self.smooth._classify(batch), minlength=self.smooth.num_classes
                )
                self.pending = [z[k:]] if k < self.n_pending else []
                self.n_pending -= k
                remaining -= k
                self.used += k
        return counts.cpu().numpy()


__all__ = [
    "Smooth",
    "check_device",
    "derive_seed",
    "lower_confidence_bound",
    "upper_confidence_bound",
    "noise_block",
]
