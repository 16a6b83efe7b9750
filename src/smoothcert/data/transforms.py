"""Image transforms of the reference code, in PIL + torch (no torchvision).

Tensor transforms take and return a float (C,H,W) tensor; PIL transforms take a PIL image.
Randomness comes from torch's global generator (seed it with ``torch.manual_seed``, as with
torchvision); DataLoader workers get distinct seeds from torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

__all__ = [
    "Compose",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "CenterCrop",
    "to_tensor",
    "ResizeTensor",
    "ResizedDataset",
]


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float32 (C,H,W) tensor in [0,1] (``transforms.ToTensor`` for 8-bit modes)."""
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA") else "L")
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class RandomCrop:
    """Zero-pad a (C,H,W) tensor by ``padding`` on each side, then crop ``size`` at random."""

    def __init__(self, size: int, padding: int = 0):
        self.size, self.padding = int(size), int(padding)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        if p:
            x = F.pad(x, (p, p, p, p))
        h, w = x.shape[-2:]
        if h < self.size or w < self.size:
            raise ValueError(f"RandomCrop({self.size}): image of size {h}x{w} is too small")
        i = int(torch.randint(0, h - self.size + 1, (1,)))
        j = int(torch.randint(0, w - self.size + 1, (1,)))
        return x[..., i : i + self.size, j : j + self.size]

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Flip the last (width) axis of a tensor, or a PIL image, with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, x):
        if float(torch.rand(1)) < self.p:
            if isinstance(x, Image.Image):
                return x.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            return x.flip(-1)
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomResizedCrop:
    """torchvision's RandomResizedCrop on a PIL image: a random area fraction in ``scale`` and
    aspect ratio in ``ratio`` (log-uniform), 10 tries, else a central crop; bilinear resize."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.size, self.scale, self.ratio = int(size), tuple(scale), tuple(ratio)

    def get_params(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the crop."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * float(torch.empty(1).uniform_(*self.scale))
            aspect = math.exp(float(torch.empty(1).uniform_(*log_ratio)))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = int(torch.randint(0, height - h + 1, (1,)))
                j = int(torch.randint(0, width - w + 1, (1,)))
                return i, j, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, img: Image.Image) -> Image.Image:
        i, j, h, w = self.get_params(*img.size)
        return img.resize(
            (self.size, self.size), Image.Resampling.BILINEAR, box=(j, i, j + w, i + h)
        )

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class Resize:
    """Resize a PIL image so that its smaller edge is ``size`` (aspect kept), bilinear."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        if short == self.size:
            return img
        new_long = int(self.size * long / short)
        new = (self.size, new_long) if w <= h else (new_long, self.size)
        return img.resize(new, Image.Resampling.BILINEAR)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """Crop the central ``size`` x ``size`` square of a PIL image (zero-padded if smaller)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        top = int(round((h - self.size) / 2.0))
        left = int(round((w - self.size) / 2.0))
        # PIL pads with zeros outside the image, as torchvision does for small images.
        return img.crop((left, top, left + self.size, top + self.size))

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class ResizeTensor:
    """Resize a float (C,H,W) image in [0, 1] to ``size`` = (H', W'): bilinear with antialiasing
    (a convex combination of pixels, so the result stays in [0, 1]; clamped against rounding).
    Used on clean images, before any noise (see :func:`smoothcert.models.pretrained.resize_data`).
    """

    def __init__(self, size):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) == self.size:
            return x
        out = F.interpolate(
            x.unsqueeze(0).float(),
            size=self.size,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        return out.squeeze(0).clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        return f"ResizeTensor({self.size})"


class ResizedDataset(Dataset):
    """``dataset`` with every image resized to ``size`` (:class:`ResizeTensor`); its other
    attributes (``name``, ``num_classes``, ``classes``, ...) are the wrapped data set's, and
    ``input_shape`` is (C, H', W'). ``resize`` is ``[H', W']``."""

    def __init__(self, dataset, size):
        self.dataset = dataset
        self.transform = ResizeTensor(size)
        self.resize = list(self.transform.size)
        self.input_shape = (int(dataset.input_shape[0]), *self.transform.size)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        x, y = self.dataset[index]
        return self.transform(x), y

    def __getattr__(self, name):  # only for attributes not set above
        if name == "dataset":  # not yet set (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __repr__(self) -> str:
        return f"ResizedDataset({self.dataset!r}, size={tuple(self.resize)})"
