"""Data sets: the embedded ``digits`` set, CIFAR-10, ImageNet, and custom folders / tensor files.

``digits32`` is the embedded digits resampled to 3 x 32 x 32 (d = 3072, CIFAR-10's input
dimension): each 8 x 8 image is upsampled by bilinear interpolation (``torch.nn.functional.
interpolate``, ``align_corners=False``, so the values stay in [0, 1]) and repeated on three
channels, with the same fixed train/test split. The smoothing noise then lives in 3072 dimensions
exactly as on CIFAR-10, though the images carry only the 64 degrees of freedom of the digits.

Every data set yields ``(x, y)`` with ``x`` a float32 (C,H,W) tensor in [0,1] and ``y`` an int,
and has the attributes ``name``, ``num_classes``, ``input_shape`` (C,H,W), ``classes`` and
``targets``. Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import SmoothCertError
from . import transforms as T

__all__ = [
    "DATASETS",
    "load_dataset",
    "load_tensor_file",
    "dataset_normalization",
    "is_dataset_path",
    "TensorImageDataset",
    "ImageFolderDataset",
    "DIGITS_TEST_SIZE",
]

DATASETS = ("digits", "digits32", "cifar10", "imagenet")
SPLITS = ("train", "test")

CIFAR10_ENV = "CIFAR10_DIR"
IMAGENET_ENV = "IMAGENET_DIR"
CIFAR10_DEFAULT = os.path.join("data", "cifar10")
IMAGENET_DEFAULT = os.path.join("data", "imagenet")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
TENSOR_SUFFIXES = (".npz", ".pt", ".pth")

# The reference constants (Cohen et al., code/datasets.py). ``digits``: mean and standard
# deviation of all pixels of the digits train split (1437 x 64 values, /16.0), population std
# (ddof=0), rounded to 4 decimals: ``x = load_dataset("digits", "train").data`` then
# ``round(x.mean(), 4), round(x.std(), 4)`` gives 0.3058 and 0.3766.
DIGITS32_SIZE = 32
DIGITS32_MEAN, DIGITS32_STD = 0.3058, 0.3241
NORMALIZATION = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "digits": ((0.3058,), (0.3766,)),
    # ``digits32``: the same computation on its train split (1437 x 3072 values, every channel
    # equal): ``x = load_dataset("digits32", "train").data``, ``round(x.mean(), 4)``,
    # ``round(x.std(), 4)`` (population std in float64) gives 0.3058 and 0.3241.
    "digits32": ((DIGITS32_MEAN,) * 3, (DIGITS32_STD,) * 3),
    # Salman et al.'s downsampled ImageNet uses the CIFAR-10 constants.
    "imagenet32": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}

# digits: fixed stratified split, 360 test images. Per class, the number of test images is
# 360 * n_class / 1797 rounded by largest remainder (ties: smaller class first); the test images
# of a class are the first ones of ``np.random.RandomState(0).permutation`` of that class's indices
# (classes in order 0..9, one RandomState for all). NumPy's legacy RandomState stream is frozen,
# so the split never changes; tests pin a fingerprint of it. Both splits keep the original order.
DIGITS_TEST_SIZE = 360


def dataset_normalization(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(means, stds)`` per channel of a known data set (the reference constants)."""
    try:
        return NORMALIZATION[str(name).lower()]
    except KeyError:
        known = ", ".join(NORMALIZATION)
        raise SmoothCertError(
            f"no normalization constants for dataset {name!r}; known: {known}"
        ) from None


def is_dataset_path(name) -> bool:
    """Whether ``name`` designates a custom data set by path (not one of :data:`DATASETS`)."""
    s = os.fspath(name)
    if s.lower() in DATASETS:
        return False
    return os.sep in s or "/" in s or s.lower().endswith(TENSOR_SUFFIXES) or os.path.exists(s)


def _one_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


# ----------------------------------------------------------------------------- dataset classes
class TensorImageDataset(Dataset):
    """Images held in memory as a (N,C,H,W) uint8 (0..255) or float (0..1) tensor.

    ``num_classes_inferred``: ``num_classes`` was read off the labels (1 + the largest), so it
    is only a lower bound: a model with more outputs fits the data (see ``cli.common``)."""

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor,
        *,
        name: str,
        num_classes: int,
        classes=None,
        transform=None,
        num_classes_inferred: bool = False,
    ):
        self.data = data
        self.targets = targets.to(torch.int64)
        self.name = name
        self.num_classes = int(num_classes)
        self.num_classes_inferred = bool(num_classes_inferred)
        self.classes = (
            list(classes) if classes is not None else [str(i) for i in range(self.num_classes)]
        )
        self.input_shape = tuple(int(s) for s in data.shape[1:])
        self.transform = transform

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __getitem__(self, index: int):
        x = self.data[index]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.to(torch.float32, copy=True)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


class ImageFolderDataset(Dataset):
    """``root/<class>/**/<image>`` files, classes in sorted order (torchvision's ImageFolder).

    ``mode`` is the PIL mode images are converted to ("RGB" or "L"); ``transform`` maps the PIL
    image to a (C,H,W) tensor."""

    def __init__(
        self,
        root,
        classes,
        samples,
        *,
        name: str,
        num_classes: int,
        input_shape,
        transform,
        mode: str = "RGB",
    ):
        self.root = str(root)
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = list(samples)
        self.targets = [y for _, y in self.samples]
        self.name = name
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image

        path, y = self.samples[index]
        try:
            with Image.open(path) as img:
                img = img.convert(self.mode)
        except OSError as exc:
            raise SmoothCertError(f"cannot read image {path}: {_one_line(exc)}") from None
        return self.transform(img), int(y)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, root={self.root!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )


# ----------------------------------------------------------------------------- entry point
def load_dataset(name: str, split: str, root: str | None = None, *, trust: bool = False) -> Dataset:
    """The ``split`` ("train" or "test") of data set ``name``.

    ``name``: "digits" (scikit-learn's bundled 8x8 digits, fixed split 1437/360), "cifar10"
    (python pickle batches, under ``root`` or $CIFAR10_DIR or ./data/cifar10), "imagenet"
    (``train/`` and ``val/`` ImageFolder trees under ``root`` or $IMAGENET_DIR or
    ./data/imagenet), or a path: an image folder (class subfolders; with ``train/`` and ``test/``
    or ``val/`` subfolders the split picks one) or a ``.npz``/``.pt`` file (see
    :func:`load_tensor_file`; ``trust`` is its opt-in to a ``.pt`` file that needs code to
    load). Files are read as data, never as code. Raises :class:`SmoothCertError` when it
    cannot be loaded."""
    dataset = _load_dataset(name, split, root, trust)
    if len(dataset) == 0:
        raise SmoothCertError(f"dataset {os.fspath(name)} ({split} split) is empty: no images")
    return dataset


def _load_dataset(name, split: str, root, trust: bool = False) -> Dataset:
    if split not in SPLITS:
        raise SmoothCertError(f"unknown split {split!r}; use 'train' or 'test'")
    if root is not None:
        root = os.fspath(root)
    key = os.fspath(name)
    lowered = key.lower()
    if lowered == "digits":
        return _digits(split)
    if lowered == "digits32":
        return _digits32(split)
    if lowered == "cifar10":
        return _cifar10(split, root)
    if lowered == "imagenet":
        return _imagenet(split, root)
    if not is_dataset_path(key):
        raise SmoothCertError(
            f"unknown dataset {key!r}: use one of {', '.join(DATASETS)}, or a "
            "path to an image folder or a .npz / .pt file"
        )
    path = Path(key).expanduser()
    if not path.exists():
        raise SmoothCertError(f"dataset {key} not found: no such file or folder")
    if path.is_dir():
        return _custom_folder(path, split)
    if path.suffix.lower() in TENSOR_SUFFIXES:
        return load_tensor_file(path, split, trust=trust)
    raise SmoothCertError(
        f"dataset {key}: unsupported file type {path.suffix or '(none)'!r}; "
        "use an image folder, a .npz or a .pt file"
    )


# ----------------------------------------------------------------------------- digits
def _digits_split_indices(y: np.ndarray, n_test: int = DIGITS_TEST_SIZE):
    """``(train, test)`` index arrays of the fixed stratified digits split (see module notes)."""
    classes, counts = np.unique(y, return_counts=True)
    exact = n_test * counts / counts.sum()
    per_class = np.floor(exact).astype(int)
    order = np.lexsort((classes, -(exact - per_class)))
    per_class[order[: n_test - per_class.sum()]] += 1
    rs = np.random.RandomState(0)
    test = np.concatenate(
        [
            rs.permutation(np.flatnonzero(y == c))[:k]
            for c, k in zip(classes, per_class, strict=True)
        ]
    )
    test = np.sort(test)
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


def _digits(split: str) -> TensorImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    train, test = _digits_split_indices(y)
    idx = train if split == "train" else test
    data = torch.from_numpy(np.ascontiguousarray(images[idx][:, None, :, :]))
    return TensorImageDataset(
        data,
        torch.from_numpy(y[idx]),
        name="digits",
        num_classes=10,
        classes=[str(i) for i in range(10)],
    )


def _digits32(split: str) -> TensorImageDataset:
    """``digits`` upsampled to 3 x 32 x 32 (module notes)."""
    small = _digits(split)
    big = torch.nn.functional.interpolate(
        small.data, size=(DIGITS32_SIZE, DIGITS32_SIZE), mode="bilinear", align_corners=False
    )
    data = big.clamp_(0.0, 1.0).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(
        data, small.targets, name="digits32", num_classes=10, classes=list(small.classes)
    )


# ----------------------------------------------------------------------------- cifar10
def _cifar10_folder(root: str | None) -> Path:
    """The ``cifar-10-batches-py`` folder: under/at ``root``, $CIFAR10_DIR, or ./data/cifar10."""
    if root is not None:
        bases = [root]
    elif os.environ.get(CIFAR10_ENV):
        bases = [os.environ[CIFAR10_ENV]]
    else:
        bases = [CIFAR10_DEFAULT]
    how = f"pass --data-dir / set {CIFAR10_ENV}"
    looked = []
    for base in bases:
        base = Path(base).expanduser()
        for cand in (base / CIFAR10_FOLDER, base):
            looked.append(os.path.abspath(cand))
            if cand.is_dir() and any(
                (cand / f).is_file() for f in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES
            ):
                return cand
    raise SmoothCertError(
        f"cifar10 not found: looked in {' and '.join(looked)}; download "
        f"CIFAR-10 (python version) and extract {CIFAR10_FOLDER} there, "
        f"or {how}"
    )


def _latin1(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes call it (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1", errors)


def _numpy_reconstruct():
    core = getattr(np, "_core", None)
    return (core.multiarray if core is not None else np.core.multiarray)._reconstruct


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch, data only: dicts, lists, bytes, numbers and numpy arrays.
    Any other global (a function the pickle would call) is refused, so a crafted batch file
    cannot run code."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR-10 batch holds arrays and lists only"
            )
        if module == "_codecs":
            return _latin1
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _read_cifar_batch(path: Path):
    try:
        with open(path, "rb") as f:
            entry = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # truncated / not a pickle / a global that is not data
        raise SmoothCertError(f"cannot read CIFAR-10 batch {path}: {_one_line(exc)}") from None
    if not isinstance(entry, dict):
        raise SmoothCertError(f"CIFAR-10 batch {path} is not a pickled dict")
    entry = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in entry.items()}
    if "data" not in entry or not ("labels" in entry or "fine_labels" in entry):
        raise SmoothCertError(f"CIFAR-10 batch {path} lacks 'data' / 'labels'")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SmoothCertError(
            f"CIFAR-10 batch {path}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)"
        )
    if labels.shape != (data.shape[0],):
        raise SmoothCertError(
            f"CIFAR-10 batch {path}: {labels.size} labels for {data.shape[0]} images"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar10(split: str, root: str | None) -> TensorImageDataset:
    folder = _cifar10_folder(root)
    files = CIFAR10_TRAIN_FILES if split == "train" else CIFAR10_TEST_FILES
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise SmoothCertError(
            f"cifar10 {split} split incomplete in {folder}: missing {', '.join(missing)}"
        )
    parts = [_read_cifar_batch(folder / f) for f in files]
    data = torch.from_numpy(np.concatenate([d for d, _ in parts]))
    labels = np.concatenate([y for _, y in parts])
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise SmoothCertError(f"cifar10 labels in {folder} are outside 0..9")
    transform = (
        T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()])
        if split == "train"
        else None
    )
    return TensorImageDataset(
        data,
        torch.from_numpy(labels),
        name="cifar10",
        num_classes=10,
        classes=CIFAR10_CLASSES,
        transform=transform,
    )


# ----------------------------------------------------------------------------- image folders
def _class_dirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _scan_images(folder: Path, classes) -> list[tuple[str, int]]:
    samples = []
    for idx, cls in enumerate(classes):
        cdir = folder / cls
        if not cdir.is_dir():
            continue
        for dirpath, dirnames, filenames in sorted(os.walk(cdir, followlinks=True)):
            dirnames.sort()
            for fname in sorted(filenames):
                if fname.lower().endswith(IMG_EXTENSIONS) and not fname.startswith("."):
                    samples.append((os.path.join(dirpath, fname), idx))
    return samples


def _imagenet_root(root: str | None) -> Path:
    if root is not None:
        base = root
    elif os.environ.get(IMAGENET_ENV):
        base = os.environ[IMAGENET_ENV]
    else:
        base = IMAGENET_DEFAULT
    how = f"pass --data-dir / set {IMAGENET_ENV}"
    base = Path(base).expanduser()
    if not base.is_dir():
        raise SmoothCertError(
            f"imagenet not found: looked in {os.path.abspath(base)}; put the "
            "ImageNet train/<wnid>/*.JPEG and val/<wnid>/*.JPEG folders there, "
            f"or {how}"
        )
    return base


def _imagenet(split: str, root: str | None) -> ImageFolderDataset:
    base = _imagenet_root(root)
    sub = base / ("train" if split == "train" else "val")
    if not sub.is_dir():
        raise SmoothCertError(
            f"imagenet {split} split not found: no folder {sub} (expected "
            f"{sub}/<wnid>/*.JPEG; the validation images must be sorted "
            "into class folders)"
        )
    classes = _class_dirs(sub)
    # A partial validation tree keeps the class indices of the full train tree.
    train_dir = base / "train"
    if split == "test" and train_dir.is_dir():
        train_classes = _class_dirs(train_dir)
        if set(classes) <= set(train_classes):
            classes = train_classes
    samples = _scan_images(sub, classes)
    if not samples:
        raise SmoothCertError(f"imagenet {split} split: no images found in {sub}/<wnid>/")
    if split == "train":
        transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.to_tensor])
    else:
        transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.to_tensor])
    return ImageFolderDataset(
        sub,
        classes,
        samples,
        name="imagenet",
        num_classes=max(1000, len(classes)),
        input_shape=(3, 224, 224),
        transform=transform,
        mode="RGB",
    )


_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _custom_folder(path: Path, split: str) -> ImageFolderDataset:
    sub = path
    split_dirs = ("train",) if split == "train" else ("test", "val")
    if (path / "train").is_dir() and any((path / d).is_dir() for d in ("test", "val")):
        sub = next(path / d for d in split_dirs if (path / d).is_dir())
    classes = _class_dirs(sub)
    if sub != path and split == "test":  # keep the train split's class indices
        train_classes = _class_dirs(path / "train")
        if set(classes) <= set(train_classes):
            classes = train_classes
    if not classes:
        raise SmoothCertError(
            f"dataset {path}: no class subfolders in {sub} (expected {sub}/<class>/<image>)"
        )
    samples = _scan_images(sub, classes)
    if not samples:
        raise SmoothCertError(
            f"dataset {path}: no images ({', '.join(IMG_EXTENSIONS)}) in {sub}/<class>/"
        )
    from PIL import Image

    first = samples[0][0]
    try:
        with Image.open(first) as img:
            mode = "L" if img.mode in _GRAY_MODES else "RGB"
            width, height = img.size
    except OSError as exc:
        raise SmoothCertError(f"cannot read image {first}: {_one_line(exc)}") from None
    channels = 1 if mode == "L" else 3
    return ImageFolderDataset(
        sub,
        classes,
        samples,
        name=str(path),
        num_classes=len(classes),
        input_shape=(channels, height, width),
        transform=T.to_tensor,
        mode=mode,
    )


# ----------------------------------------------------------------------------- tensor files
_X_KEYS = ("x", "images")
_Y_KEYS = ("y", "labels")


def _to_numpy(value, what: str, path: Path) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception:
        raise SmoothCertError(f"dataset {path}: {what} is not an array") from None


def _read_tensor_file(path: Path, trust: bool = False) -> dict:
    """The arrays of a .npz / .pt file as a dict (a (x, y) tuple becomes {'x', 'y'}); a .pt
    file is read with ``weights_only=True`` unless ``trust`` (see :func:`load_tensor_file`)."""
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise SmoothCertError(f"cannot read dataset {path}: {_one_line(exc)}") from None
    with open(path, "rb") as f:
        magic = f.read(1)
    if not zipfile.is_zipfile(path) and magic != b"\x80":
        raise SmoothCertError(f"cannot read dataset {path}: not a PyTorch file, or truncated")
    from ..models.checkpoint import torch_load  # lazy: models imports this module

    hint = (
        "store the arrays as tensors, or in a .npz file; or pass trust=True to "
        "load_dataset only if you trust the file's source"
    )
    obj = torch_load(path, trust=trust, what="dataset", hint=hint)
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return {"x": obj[0], "y": obj[1]}
    if isinstance(obj, dict):
        return {str(k): v for k, v in obj.items()}
    raise SmoothCertError(
        f"dataset {path}: expected a dict of arrays or an (x, y) tuple, got {type(obj).__name__}"
    )


def _pick(arrays: dict, names, suffix: str):
    for n in names:
        if n + suffix in arrays:
            return n + suffix
    return None


def _images_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise SmoothCertError(
            f"dataset {path}: images have shape {x.shape}; expected (N,C,H,W), (N,H,W,C) or (N,H,W)"
        )
    # Channel axis: the one of size 1 or 3 (else <= 4) when the other end's is not.
    for small in ((1, 3), (1, 2, 3, 4)):
        c_first, c_last = x.shape[1] in small, x.shape[3] in small
        if c_first and not c_last:
            return x
        if c_last and not c_first:
            return x.transpose(0, 3, 1, 2)
        if c_first and c_last:
            break
    raise SmoothCertError(
        f"dataset {path}: cannot tell the channel axis of images of shape "
        f"{x.shape}; store them as (N,C,H,W) with C in 1..4 and H, W > 4"
    )


def _images_tensor(x: np.ndarray, path: Path) -> torch.Tensor:
    x = _images_nchw(x, path)
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x))
    if np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_:
        lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
        if lo < 0 or hi > 255:
            raise SmoothCertError(
                f"dataset {path}: integer images must lie in 0..255, found {lo}..{hi}"
            )
        return torch.from_numpy(np.ascontiguousarray(x.astype(np.uint8)))
    if np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
        if x.size:
            if not np.isfinite(x).all():
                raise SmoothCertError(f"dataset {path}: images contain NaN or infinite values")
            lo, hi = float(x.min()), float(x.max())
            if lo < 0.0 or hi > 1.0:
                raise SmoothCertError(
                    f"dataset {path}: float images must lie in [0, 1], found "
                    f"[{lo:g}, {hi:g}]; divide by 255 or store uint8"
                )
        return torch.from_numpy(np.ascontiguousarray(x))
    raise SmoothCertError(f"dataset {path}: images of dtype {x.dtype} are not supported")


def _labels(y: np.ndarray, n: int, path: Path) -> np.ndarray:
    if y.ndim == 2 and 1 in y.shape:  # (N, 1) or (1, N) column / row of labels
        y = y.reshape(-1)
    if y.ndim != 1 or y.shape[0] != n:
        raise SmoothCertError(f"dataset {path}: labels have shape {np.shape(y)}, expected ({n},)")
    if np.issubdtype(y.dtype, np.floating):
        if y.size and not np.array_equal(y, np.round(y)):
            raise SmoothCertError(f"dataset {path}: labels must be integers")
    elif not np.issubdtype(y.dtype, np.integer):
        raise SmoothCertError(f"dataset {path}: labels of dtype {y.dtype} are not integers")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise SmoothCertError(f"dataset {path}: labels must be >= 0, found {int(y.min())}")
    return y


def load_tensor_file(path, split: str, *, trust: bool = False) -> TensorImageDataset:
    """A data set from a ``.npz`` / ``.pt`` file.

    Keys ``x``/``y`` or ``images``/``labels`` (a .pt file may also hold a tuple ``(x, y)``);
    with ``x_train``/``y_train`` and ``x_test``/``y_test`` (or ``images_*``/``labels_*``) the
    split picks the pair, otherwise the file is the split. Images: uint8 0..255 or float in [0,1],
    (N,C,H,W), (N,H,W,C) when the channel axis is unambiguous (C <= 4), or (N,H,W).
    ``num_classes`` is 1 + the largest label over all the file's labels, a lower bound
    (``num_classes_inferred``): the labels may be any subset of a model's classes, e.g. the
    classes 0-4 of a 10-class model, and the commands take the number of classes from the model.

    A ``.pt`` file is read with ``torch.load(weights_only=True)``: tensors and plain data, never
    code. ``trust=True`` also reads one that needs unpickling code (numpy arrays, other Python
    objects), which can execute arbitrary code stored in the file: only for a trusted source."""
    path = Path(path)
    arrays = _read_tensor_file(path, trust)
    suffix = "_train" if split == "train" else "_test"
    xk, yk = _pick(arrays, _X_KEYS, suffix), _pick(arrays, _Y_KEYS, suffix)
    if xk is None and yk is None:
        xk, yk = _pick(arrays, _X_KEYS, ""), _pick(arrays, _Y_KEYS, "")
    if xk is None or yk is None:
        keys = ", ".join(sorted(arrays)) or "none"
        raise SmoothCertError(
            f"dataset {path}: expected keys x/y or images/labels (or "
            f"x{suffix}/y{suffix}), found {keys}"
        )
    x = _images_tensor(_to_numpy(arrays[xk], xk, path), path)
    y = _labels(_to_numpy(arrays[yk], yk, path), x.shape[0], path)
    all_labels = [y]
    for k in arrays:
        if k != yk and k.split("_")[0] in _Y_KEYS:
            try:
                all_labels.append(np.asarray(_to_numpy(arrays[k], k, path), dtype=np.int64))
            except (TypeError, ValueError, SmoothCertError):
                pass
    num_classes = 1 + max((int(a.max()) for a in all_labels if a.size), default=0)
    return TensorImageDataset(
        x, torch.from_numpy(y), name=str(path), num_classes=num_classes, num_classes_inferred=True
    )
