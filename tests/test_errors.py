"""Library errors name the Python argument; the command line swaps in its flag."""

from lifelong.errors import ConfigError


def test_for_flags_replaces_only_the_named_argument() -> None:
    err = ConfigError("`lam` must be >= 0, got -1 (`lam` of EWC; `lr` is fine)", "ewc.lam")
    assert err.for_flags("--ewc-lambda") == "--ewc-lambda must be >= 0, got -1 (--ewc-lambda of EWC; `lr` is fine)"
    assert str(err).startswith("`lam` must be")


def test_for_flags_without_an_argument_keeps_the_message() -> None:
    assert ConfigError("unknown benchmark 'x'").for_flags("--benchmark") == "unknown benchmark 'x'"
