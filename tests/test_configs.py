"""Options derived from the config dataclasses (type, default and help written once), their type
checks, and errors that name the Python argument in the API and the flag on the command line."""

import argparse
import dataclasses
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from lifelong import cli
from lifelong.configs import add_options, argument_type, boolean, build, check_types, flag, ints, option
from lifelong.errors import ConfigError
from lifelong.experiment import EXPERIMENTS, AdaptConfig, AdaptExperiment, CurveConfig, MetaConfig, RunConfig, run


@dataclass
class Toy:
    steps: int = option(3, "optimiser steps")
    rate: float | None = option(None, "a rate (default: the method's)")
    names: list[str] = option(["a"], "some names")
    shots: list[int | None] = option([1, None], "shots")
    quiet: bool = option(False, "say less")
    hidden: dict = option({}, "not a flag", cli=False)


def toy_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_options(p, Toy)
    return p


def test_each_field_is_a_flag_with_its_type_and_help():
    p = toy_parser()
    text = p.format_help()
    assert "optimiser steps (default 3)" in text and "a rate (default: the method's)" in text
    assert "some names (default a)" in text and "shots (default 1,all)" in text and "--hidden" not in text
    args = p.parse_args(["--steps", "5", "--rate", "0.5", "--names", "b,c", "--names", "d", "--shots", "2,all",
                         "--quiet"])
    assert vars(args) == {"steps": 5, "rate": 0.5, "names": [["b", "c"], ["d"]], "shots": [2, None], "quiet": True}
    assert vars(p.parse_args([])) == {}  # unset flags stay absent: a config file or a resumed run supplies them
    assert build(Toy, vars(args)) == Toy(5, 0.5, ["b", "c", "d"], [2, None], True)
    assert build(Toy, {"names": "x,y", "shots": [1, "all"]}) == Toy(names=["x", "y"], shots=[1, None])
    with pytest.raises(SystemExit):
        p.parse_args(["--steps", "two"])


class Method:
    def __init__(self, lam: float = 1.0, layer: str | None = None, steps: int | None = None, gated: bool = False,
                 hidden: Sequence[int] = (100,), name="x", other=None) -> None:
        pass


@pytest.mark.parametrize("arg, parse", [("lam", float), ("layer", str), ("steps", int), ("gated", boolean),
                                        ("hidden", ints), ("name", str), ("other", str)])
def test_a_hyper_parameter_flag_parses_as_its_default_or_else_its_type_hint(arg, parse):
    param = inspect.signature(Method).parameters[arg]
    assert argument_type(Method, param) is parse  # a None default: `str | None` parses as str, not NoneType


def test_a_method_option_with_a_none_default_parses_on_the_command_line():
    args = cli.parser().parse_args(["adapt", "--dann-layer", "model.x", "--coral-layer", "features.1"])
    assert (args.dann_layer, args.coral_layer) == ("model.x", "features.1")
    assert cli.build_config(args).method_options == {"dann": {"layer": "model.x"}, "coral": {"layer": "features.1"}}


def test_a_field_added_to_a_config_appears_on_the_command_line(monkeypatch, capsys):
    @dataclass
    class Wider(AdaptConfig):
        warmup: int = option(4, "warm-up epochs before the alignment term")

    monkeypatch.setattr(AdaptExperiment, "config_class", Wider)
    with pytest.raises(SystemExit):
        cli.main(["adapt", "--help"])
    assert "warm-up epochs before the alignment term (default 4)" in capsys.readouterr().out
    config = cli.build_config(cli.parser().parse_args(["adapt", "--warmup", "7", "--coral-lambda", "3"]))
    assert isinstance(config, Wider) and config.warmup == 7 and config.method_options == {"coral": {"lam": 3.0}}


@pytest.mark.parametrize("command", list(EXPERIMENTS))
def test_every_config_field_of_every_command_is_an_option(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    shown = set(re.findall(r"--[a-z0-9-]+", capsys.readouterr().out))
    fields = [f for f in dataclasses.fields(EXPERIMENTS[command].config_class) if f.metadata.get("cli", True)]
    assert {flag(f.name) for f in fields} | {f"--{d.replace('_', '-')}" for d in cli.method_options(
        EXPERIMENTS[command])} <= shown
    assert {cli.flags(command)[f.name] for f in fields} <= shown


def test_type_checks_name_the_field():
    with pytest.raises(ConfigError, match="config value steps: 'x' has the wrong type") as err:
        check_types(Toy(steps="x"))
    assert err.value.argument == "steps"
    check_types(Toy(rate=1))  # an int is a float
    for bad in (Toy(rate=True), Toy(names=["a", 1]), Toy(shots=["all"]), Toy(steps=None)):
        with pytest.raises(ConfigError, match="wrong type"):
            check_types(bad)
    with pytest.raises(ConfigError, match="unknown config key 'stepz'"):
        build(Toy, {"stepz": 1})


# --- errors: the Python argument in the API, its flag on the command line -------------------------


def cli_error(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("lifelong: error: ") and err.count("\n") == 1
    return err


@pytest.mark.parametrize("config, argument, message, argv, flagged", [
    (CurveConfig(steps=0), "steps", "`steps` must be a whole number >= 1, got 0",
     ["transfer", "--steps", "0"], "--steps must be a whole number >= 1, got 0"),
    (CurveConfig(feature_cut=-1), "feature_cut", "`feature_cut` must be a whole number >= 0",
     ["transfer", "--feature-cut", "-1"], "--feature-cut must be a whole number >= 0"),
    (MetaConfig(valid_every=-1), "valid_every", "`valid_every` must be a whole number >= 0",
     ["meta", "--valid-every", "-1"], "--valid-every must be a whole number >= 0"),
    (RunConfig(batch_size=0), "batch_size", "`batch_size` must be a whole number >= 1",
     ["run", "--batch-size", "0"], "--batch-size must be a whole number >= 1"),
    (RunConfig(lr=-1.0), "lr", "the learning rate (`lr`) must be a positive number",
     ["run", "--lr", "-1"], "the learning rate (--lr) must be a positive number"),
    (AdaptConfig(seeds=0), "seeds", "`seeds` must be a whole number >= 1",
     ["adapt", "--seeds", "0"], "--seeds must be a whole number >= 1"),
])
def test_the_api_names_the_argument_the_cli_its_flag(capsys, config, argument, message, argv, flagged):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        config.validate()
    assert err.value.argument == argument
    assert flagged in cli_error(capsys, *argv)


def test_strategy_options_become_their_flags(capsys):
    config = RunConfig(benchmark="split-digits", n_tasks=2, strategy=["replay"],
                       strategy_options={"replay": {"buffer_size": 10**6}})
    with pytest.raises(ConfigError, match="`buffer_size` 1000000 is larger") as err:
        run(config)
    assert err.value.argument == "replay.buffer_size"
    err_line = cli_error(capsys, "run", "--benchmark", "split-digits", "--n-tasks", "2", "--strategy", "replay",
                         "--replay-buffer-size", "1000000")
    assert "--replay-buffer-size 1000000 is larger" in err_line
    cases = [("run", ConfigError("`lam` must be >= 0, got -1", "ewc.lam"), "--ewc-lambda must be >= 0, got -1"),
             ("run", ConfigError("`replay_batch_size` must be >= 1", "der.replay_batch_size"),
              "--der-replay-batch-size must be >= 1"),
             ("run", ConfigError("`replay_batch_size` must be >= 1", "replay.replay_batch_size"),
              "--replay-batch-size must be >= 1"),  # the replay strategy's option is the shared run option
             ("adapt", ConfigError("`lam` must be >= 0", "coral.lam"), "--coral-lambda must be >= 0"),
             ("run", ConfigError("`out` x is a file: choose another `out`", "out"), "--out x is a file: choose "
              "another --out"),
             ("bench", ConfigError("`epochs` must be >= 1", "epochs"), "`epochs` must be >= 1")]  # suite keys
    for command, error, shown in cases:
        assert cli.message(error, command) == shown
