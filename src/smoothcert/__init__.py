"""smoothcert: certified robustness of any black-box classifier by randomized smoothing.

Gaussian noise (Cohen et al., 2019) and the non-Gaussian families of "Filling the soap bubbles":
see :mod:`smoothcert.noises`, :mod:`smoothcert.certificates` and :class:`smoothcert.Smooth`.
"""

from .certificates import get_certificate
from .errors import SmoothCertError
from .noises import FAMILIES, Gaussian, L2Family, LinfMixed, LinfPure, Noise, make_noise
from .sequential import AdaptiveCertificate, AdaptivePrediction
from .smooth import Smooth

__version__ = "0.1.0"

__all__ = ["SmoothCertError", "FAMILIES", "Noise", "Gaussian", "L2Family", "LinfMixed",
           "LinfPure", "make_noise", "get_certificate", "Smooth", "AdaptiveCertificate",
           "AdaptivePrediction", "__version__"]
