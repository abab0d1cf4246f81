"""The service's measurements in the Prometheus text format (version 0.0.4), kept by hand: a few counters
and histograms, thread-safe, with the label sets fixed by the code (paths are the app's routes, never a
client's text), so that no request can grow them."""

from __future__ import annotations

import bisect
import math
import numbers
import threading
from collections.abc import Callable, Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{v}"' for k, v in labels] + ([extra] if extra else [])
    return "{" + ",".join(parts) + "}" if parts else ""


def value_text(value: float) -> str:
    """A sample value as Prometheus reads it exactly: an integer as one, a float by its shortest repr (all of
    its digits), NaN and infinities by Prometheus's own names."""
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


class Counter:
    def __init__(self, name: str, help: str) -> None:  # noqa: A002 (Prometheus's word)
        self.name, self.help, self.values, self.lock = name, help, dict[Labels, float](), threading.Lock()

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self.lock:
            self.values[key] = self.values.get(key, 0) + amount

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        with self.lock:
            for key, value in sorted(self.values.items()):
                yield f"{self.name}{_labels(key)} {value_text(value)}"


class Histogram:
    def __init__(self, name: str, help: str) -> None:  # noqa: A002
        self.name, self.help, self.lock = name, help, threading.Lock()
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}  # labels -> (bucket counts, [sum])

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self.lock:
            counts, total = self.series.setdefault(key, ([0] * (len(BUCKETS) + 1), [0.0]))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            total[0] += seconds

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        with self.lock:
            for key, (counts, total) in sorted(self.series.items()):
                running = 0
                for bound, n in zip([*map(str, BUCKETS), "+Inf"], counts, strict=True):
                    running += n
                    le = f'le="{bound}"'
                    yield f"{self.name}_bucket{_labels(key, le)} {running}"
                yield f"{self.name}_sum{_labels(key)} {value_text(total[0])}"
                yield f"{self.name}_count{_labels(key)} {running}"


class Reading:
    """A value read when the metrics are asked for: a gauge, or a counter kept elsewhere (`kind`)."""

    def __init__(self, name: str, help: str, read: Callable[[], float], kind: str = "gauge") -> None:  # noqa: A002
        self.name, self.help, self.read, self.kind = name, help, read, kind

    def lines(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} {self.kind}"
        yield f"{self.name} {value_text(self.read())}"


def render(metrics: Iterable[Counter | Histogram | Reading]) -> str:
    return "".join(f"{line}\n" for m in metrics for line in m.lines())
