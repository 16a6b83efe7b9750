"""``smoothcert train``: noise-augmented training of a base classifier (resumable)."""

from __future__ import annotations

from pathlib import Path

from .common import NOISE_NAMES, DefaultsOnceFormatter


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a base classifier with noise augmentation",
        description="Train ARCH on DATASET with fresh smoothing noise added to every training "
        "image (in [0,1] input space), as in Cohen et al. (2019). Writes OUTDIR/log "
        "and OUTDIR/checkpoint.pth.tar after every epoch; rerunning the same command "
        "resumes from the checkpoint.",
        formatter_class=DefaultsOnceFormatter,
    )
    p.add_argument(
        "dataset",
        metavar="DATASET",
        help="digits, digits32 (digits at 3x32x32, d = 3072), cifar10, "
        "imagenet, or a data set path",
    )
    p.add_argument(
        "arch",
        metavar="ARCH",
        help="digits_cnn, digits32_cnn, cifar_resnet20, "
        "cifar_resnet110, resnet50, or a model of another library: hf:DIR, timm:NAME, "
        "torchvision:NAME",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="local weights file (.safetensors or a state "
        "dict) for a timm:/torchvision: ARCH; never downloaded (default: random)",
    )
    p.add_argument(
        "outdir", metavar="OUTDIR", help="folder for the checkpoint and the training log"
    )
    g = p.add_argument_group("noise")
    g.add_argument("--noise", choices=NOISE_NAMES, default="gaussian", help="training noise family")
    g.add_argument("--k", type=float, default=0.0, help="shape parameter k of the noise")
    s = g.add_mutually_exclusive_group(required=True)
    s.add_argument(
        "--sigma",
        "--noise_sd",
        type=float,
        dest="sigma",
        help="scale sigma of the noise (0: no noise)",
    )
    s.add_argument(
        "--sigma0", type=float, help="match N(0, sigma0^2): sigma = sqrt((d-1)/(d-1-k)) sigma0"
    )
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=90, help="total number of epochs")
    o.add_argument("--batch", type=int, default=256, help="batch size")
    o.add_argument(
        "--lr", "--learning-rate", type=float, default=0.1, dest="lr", help="initial learning rate"
    )
    o.add_argument(
        "--lr-step-size",
        "--lr_step_size",
        type=int,
        default=30,
        dest="lr_step_size",
        help="epochs between learning-rate decays",
    )
    o.add_argument("--gamma", type=float, default=0.1, help="learning-rate decay factor")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    o.add_argument(
        "--weight-decay",
        "--weight_decay",
        "--wd",
        type=float,
        default=1e-4,
        dest="weight_decay",
        help="weight decay",
    )
    r = p.add_argument_group("run")
    r.add_argument("--workers", type=int, default=0, help="data loading worker processes")
    r.add_argument(
        "--device", default=None, help="torch device (default: cuda when available, else cpu)"
    )
    r.add_argument("--seed", type=int, default=0, help="seed of every random stream")
    r.add_argument(
        "--data-dir",
        "--data_dir",
        dest="data_dir",
        default=None,
        help="root folder of the data sets",
    )
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..checks import check_positive_int, check_seed
    from ..training import NoiseSpec, train

    check_positive_int("--epochs", args.epochs)  # 0 epochs would write nothing
    check_seed(args.seed)
    spec = NoiseSpec(name=args.noise, k=args.k, sigma=args.sigma, sigma0=args.sigma0)
    result = train(
        args.dataset,
        args.arch,
        args.outdir,
        spec,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        lr_step_size=args.lr_step_size,
        gamma=args.gamma,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        workers=args.workers,
        device=args.device,
        seed=args.seed,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        weights=args.weights,
    )
    for name, path in (("checkpoint", result.checkpoint), ("log", result.log)):
        if Path(path).is_file():  # only files that exist (written now or by an earlier run)
            print(f"{name}: {path}")
    return 0
