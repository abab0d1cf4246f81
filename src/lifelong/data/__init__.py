"""Data: sources (offline), IDX reader, tasks and streams, scenarios, named benchmarks."""

from .benchmarks import BENCHMARKS, Benchmark, benchmark
from .catalog import DATASETS, NamedDataset, dataset, select_classes
from .idx import parse_idx, read_idx
from .images import LazyImages, image_folder
from .online import OnlineStream, online, served, window
from .scenarios import from_tasks, permuted, rotated, split
from .sources import arrays, csv, digits, digits28, fashion_mnist, mnist1d
from .stream import SCENARIOS, TASK_FREE, Concat, Dataset, Features, Split, Stream, Task, stratified_split
from .transforms import Chain, Permute, Rotate, Scale, Transform, rotate

__all__ = [
    "BENCHMARKS", "Benchmark", "benchmark", "DATASETS", "NamedDataset", "dataset", "select_classes",
    "parse_idx", "read_idx", "LazyImages", "image_folder",
    "from_tasks", "permuted", "rotate", "rotated", "split", "arrays", "csv", "digits", "digits28",
    "fashion_mnist", "mnist1d", "SCENARIOS", "Concat", "Dataset", "Features", "Split", "Stream", "Task",
    "stratified_split", "OnlineStream", "online", "served", "window", "TASK_FREE", "Chain", "Permute", "Rotate",
    "Scale", "Transform",
]
