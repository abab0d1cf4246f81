"""Image folders (one sub-folder per class), loaded lazily with PIL when a batch is indexed; with
`workers`, the training loop's batches (`Split.batches`) are decoded in worker processes by a
`torch.utils.data.DataLoader`, so a folder larger than RAM trains at the speed of several decoders."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..errors import ConfigError, DataError
from ..extras import need
from .stream import Dataset, Split, stratified_split

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class LazyImages:
    """Image files that become a float tensor batch (N, C, H, W) in [0, 1] only when indexed; `workers`
    processes decode the batches of `batches` (0: this process decodes them, as `load` does)."""

    def __init__(self, paths: Sequence[str], size: tuple[int, int], grayscale: bool, workers: int = 0) -> None:
        self.paths = np.asarray(paths, dtype=object)
        self.size, self.grayscale, self.workers = size, grayscale, workers
        self.shape: tuple[int, ...] = (len(self.paths), 1 if grayscale else 3, *size)

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> np.ndarray:
        """Image `i` as float32 (H, W, C) in [0, 1]."""
        Image = need("PIL.Image", "images")
        h, w = self.size
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.grayscale else "RGB")
                if im.size != (w, h):
                    im = im.resize((w, h))
                return np.asarray(im, dtype=np.float32).reshape(h, w, -1) / 255.0
        except (OSError, Image.DecompressionBombError) as err:  # truncated or replaced since image_folder checked it
            raise DataError(f"cannot read image {path}: {err}") from None

    def load(self, idx: Tensor) -> Tensor:
        out = np.empty((len(idx), *self.size, self.shape[1]), dtype=np.float32)
        for k, i in enumerate(idx.tolist()):
            out[k] = self.decode(i)
        return _channels_first(torch.from_numpy(out))

    def batches(self, chunks: Sequence[Tensor]) -> Iterator[Tensor]:
        """`load` of each index tensor of `chunks`, in order, decoded by `workers` processes."""
        if self.workers == 0:
            yield from (self.load(idx) for idx in chunks)
            return
        loader = DataLoader(_Files(self), batch_sampler=[idx.tolist() for idx in chunks], num_workers=self.workers,
                            collate_fn=functools.partial(_stack, (*self.size, self.shape[1])))
        yield from loader

    def subset(self, idx: Tensor) -> LazyImages:
        return LazyImages(list(self.paths[idx.cpu().numpy()]), self.size, self.grayscale, self.workers)

    def cat(self, others: Sequence[LazyImages]) -> LazyImages:
        paths = np.concatenate([self.paths, *(o.paths for o in others)])
        return LazyImages(list(paths), self.size, self.grayscale, self.workers)


class _Files(TorchDataset):
    """The files of a `LazyImages` as a map-style Dataset of decoded (H, W, C) arrays."""

    def __init__(self, images: LazyImages) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.images.decode(i)


def _stack(shape: tuple[int, ...], arrays: list[np.ndarray]) -> Tensor:
    """Decoded (H, W, C) images as a batch (N, C, H, W); `shape` gives an empty batch's (a rank's empty share)."""
    return _channels_first(torch.from_numpy(np.stack(arrays) if arrays else np.empty((0, *shape), np.float32)))


def _channels_first(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2).contiguous()


def image_folder(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    grayscale: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: int = 0,
) -> Dataset:
    """A data set from `path/<class>/<image>` (or `path/train/<class>/...` and `path/test/<class>/...`).

    Every image header is checked up front (corrupt files and mixed sizes fail here, not mid-run);
    pixels are read only when a batch is indexed. Without `size`, all images must share one size.
    `workers` > 0 decodes the training batches in that many worker processes (a DataLoader).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"`workers` must be a whole number >= 0, got {workers!r}", "workers")
    if size is not None and not (isinstance(size, (tuple, list)) and len(size) == 2 and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size)):
        raise ConfigError(f"`size` must be (height, width) in whole pixels >= 1, got {size!r}", "size")
    Image = need("PIL.Image", "images")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    parts = [root / "train", root / "test"] if (root / "train").is_dir() and (root / "test").is_dir() else [root]
    class_names = sorted(p.name for p in parts[0].iterdir() if p.is_dir())
    if not class_names:
        raise DataError(f"{parts[0]} has no class sub-folders: expected {parts[0]}/<class name>/<image files>")
    unseen = sorted({p.name for p in parts[-1].iterdir() if p.is_dir()} - set(class_names))
    if unseen:
        raise DataError(f"{parts[-1]} has classes that {parts[0]} has not ({', '.join(unseen[:5])}): no model "
                        "trained there could predict them; add them to the training folder or remove them")
    splits: list[tuple[list[str], list[int]]] = []
    for part in parts:
        files, labels = [], []
        for c, name in enumerate(class_names):
            found = sorted(str(f) for f in (part / name).glob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found and part == parts[0]:
                raise DataError(f"class folder {part / name} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files += found
            labels += [c] * len(found)
        splits.append((files, labels))
    explicit = size is not None
    for files, _ in splits:
        for f in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(f) as im:
                        im_size = (im.height, im.width)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise DataError(f"image {f} has more pixels than Pillow's decompression-bomb limit "
                                f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}): shrink it, or raise "
                                "that limit if you trust the file") from None
            except (Image.UnidentifiedImageError, OSError) as err:
                raise DataError(f"cannot read image {f}: {err}") from None
            size = size or im_size
            if im_size != size and not explicit:
                raise DataError(
                    f"image {f} is {im_size[0]}x{im_size[1]}, others {size[0]}x{size[1]}: pass size=(H, W) to resize"
                )
    assert size is not None

    def split(files: list[str], labels: list[int]) -> Split:
        return Split(LazyImages(files, size, grayscale, workers), torch.tensor(labels, dtype=torch.long))

    if len(parts) == 2:
        train, test = split(*splits[0]), split(*splits[1])
    else:
        train, test = stratified_split(split(*splits[0]), test_fraction, seed)
    return Dataset(root.name, train, test, class_names, (1 if grayscale else 3, *size))
