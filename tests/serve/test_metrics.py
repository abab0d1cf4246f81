"""The Prometheus text of the service's metrics: every value with all of its digits (an integer as one, a
float by its repr, NaN and infinities by Prometheus's names), however large."""

from __future__ import annotations

from lifelong.serve.metrics import Counter, Histogram, Reading, render


def samples(text: str) -> dict[str, str]:
    return dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_values_keep_every_digit():
    requests = Counter("requests_total", "requests")
    requests.inc(1_234_567, route="/learn")
    requests.inc(route="/learn")
    latency = Histogram("seconds", "latency")
    latency.observe(1234.5678901, route="/predict")
    readings = [Reading("samples_total", "samples", lambda: 98_765_432_109, "counter"),
                Reading("loss", "loss", lambda: 0.1 + 0.2), Reading("nan", "loss", lambda: float("nan")),
                Reading("inf", "loss", lambda: float("-inf")), Reading("big", "loss", lambda: 12_345_678.5)]
    got = samples(render([requests, latency, *readings]))
    assert got['requests_total{route="/learn"}'] == "1234568"
    assert got['seconds_sum{route="/predict"}'] == "1234.5678901"
    assert got['seconds_count{route="/predict"}'] == "1" and got['seconds_bucket{route="/predict",le="+Inf"}'] == "1"
    assert got["samples_total"] == "98765432109"
    assert got["loss"] == repr(0.1 + 0.2) and float(got["loss"]) == 0.1 + 0.2
    assert got["nan"] == "NaN" and got["inf"] == "-Inf" and got["big"] == "12345678.5"
