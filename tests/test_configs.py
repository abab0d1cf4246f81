"""Options derived from the config dataclasses (type, default and help written once), their type
checks, and errors that name the Python argument in the API and the flag on the command line."""

import argparse
import dataclasses
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
import torch

from lifelong import cli
from lifelong.configs import (MAX_YAML_BYTES, PARSERS, add_options, argument_type, boolean, build, check_arguments,
                              check_types, flag, ints, non_negative, option, option_specs, read_yaml)
from lifelong.errors import ConfigError
from lifelong.transfer import L2SP
from lifelong.transfer.distill import Distill
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
    add_options(p, option_specs(Toy))
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
    assert PARSERS[argument_type(Method, param)] is parse  # a None default: `str | None` parses as str


def test_a_hyper_parameter_of_a_type_the_command_line_cannot_parse_is_named():
    class Odd:
        def __init__(self, where: complex = 1j) -> None:
            pass

    with pytest.raises(TypeError, match=r"Odd\(where=...\): no command-line type for a complex"):
        argument_type(Odd, inspect.signature(Odd).parameters["where"])


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


def test_type_checks_reach_into_lists_dicts_and_whole_numbers():
    assert build(Toy, {"names": [["a"], ["b", "c"]]}).names == ["a", "b", "c"]  # a repeated flag's lists
    for values in ({"names": ["a", ["b"]]}, {"names": [1, 2]}, {"names": [None]}, {"shots": [1.5]}):
        with pytest.raises(ConfigError, match="wrong type"):
            build(Toy, values)
    with pytest.raises(ConfigError, match=r"config value steps: 99999999999999999999 is out of range"):
        build(Toy, {"steps": 99999999999999999999})
    with pytest.raises(ConfigError, match="wrong type"):  # strategy_options: dict[str, dict[str, Any]]
        build(RunConfig, {"strategy_options": {1: {"lam": 1}}})
    assert build(Toy, {"steps": 2**63 - 1, "rate": -(2**63)}).steps == 2**63 - 1
    with pytest.raises(ConfigError, match="config value shots: expected whole numbers separated by commas, got ':'"):
        build(Toy, {"shots": ":"})


def test_method_arguments_are_checked_against_their_hints_or_defaults():
    check_arguments(Method, {"lam": 2, "layer": None, "steps": 3, "gated": True, "hidden": [1, 2], "name": "y",
                             "other": [1], "unknown": object()}, "method")
    cases = [({"lam": "abc"}, "`lam` of method: 'abc' has the wrong type (expected float)"),
             ({"gated": 1}, "`gated` of method: 1 has the wrong type (expected bool)"),
             ({"hidden": [1, "x"]}, "`hidden` of method: [1, 'x'] has the wrong type"),
             ({"hidden": "12"}, "`hidden` of method: '12' has the wrong type"),
             ({"name": 5}, "`name` of method: 5 has the wrong type (expected str)"),
             ({"steps": 2**64}, "`steps` of method: 18446744073709551616 is out of range")]
    for values, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)) as err:
            check_arguments(Method, values, "method")
        assert err.value.argument == f"method.{next(iter(values))}"


def test_strategy_options_of_the_wrong_type_are_refused_before_the_strategy_is_made():
    with pytest.raises(ConfigError, match="`lam` of ewc: 'abc' has the wrong type") as err:
        RunConfig(strategy=["ewc"], strategy_options={"ewc": {"lam": "abc"}}).validate()
    assert cli.message(err.value, "run").startswith("--ewc-lambda of ewc: 'abc'")
    with pytest.raises(ConfigError, match="`lam` of coral: 'x' has the wrong type"):
        AdaptConfig(method=["coral"], method_options={"coral": {"lam": "x"}}).validate()


# --- YAML files: safe, small, no aliases, no duplicate keys ----------------------------------------

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi"))


@pytest.mark.parametrize("text, message", [
    (BOMB, "repeats the value of line 1 with a YAML alias (*name): aliases are refused"),
    ("a: &x [1]\nb: *x\n", "repeats the value of line 1 with a YAML alias"),
    ("a: &x [*x]\n", "YAML alias"),
    ("epochs: 1\nlr: 0.1\nepochs: 2\n", "gives the key 'epochs' twice (line 3): keep one"),
    ("ewc:\n  lam: 1\n  'lam': 2\n", "gives the key 'lam' twice"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nests values more than 32 levels deep"),
    ("a: " + "[" * 5000 + "]" * 5000 + "\n", "not valid YAML"),
    ("a: !!python/object:os.system x\n", "not valid YAML: could not determine a constructor"),
    ("a: [1\n", "not valid YAML: did not find expected ',' or ']' (line 2, column 1)"),
])
def test_hostile_yaml_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"config file {path} ")) as err:
        read_yaml(path, "config file")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_yaml_files_are_capped_and_utf8(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: [" + ",".join(["1"] * (MAX_YAML_BYTES // 2)) + "]\n")
    with pytest.raises(ConfigError, match=f"suite file {big} is larger than 1 MB"):
        read_yaml(big, "suite file")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("benchmark: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"tune spec {latin} is not UTF-8 text \\(byte 14\\): save it as UTF-8"):
        read_yaml(latin, "tune spec")
    fine = tmp_path / "fine.yaml"
    fine.write_bytes("\ufeffa: &x [1]\n<<: {b: 2}\nb: caf\u00e9\n".encode())  # a BOM, an unused anchor, a merge
    assert read_yaml(fine, "config file") == {"a": [1], "b": "caf\u00e9"}
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert read_yaml(tmp_path / "empty.yaml", "config file") is None
    with pytest.raises(ConfigError, match="cannot read config file .*: Is a directory"):
        read_yaml(tmp_path, "config file")


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, -0.5, True, "1", None])
def test_a_weight_must_be_a_finite_number_at_least_zero(value):
    with pytest.raises(ConfigError, match=r"`lam` of ewc must be a number >= 0, got ") as err:
        non_negative({"lam": value}, "ewc")
    assert err.value.argument == "ewc.lam"


def test_a_positive_weight_refuses_zero_and_takes_the_rest():
    non_negative({"alpha": 0, "beta": 2.5}, "l2sp")
    non_negative({"temperature": 1e-9}, "lwf", positive=True)
    with pytest.raises(ConfigError, match=r"`temperature` of lwf must be a number > 0, got 0"):
        non_negative({"temperature": 0}, "lwf", positive=True)


@pytest.mark.parametrize("make", [lambda: L2SP(alpha=float("nan")), lambda: L2SP(beta=float("inf")),
                                  lambda: Distill(torch.nn.Linear(2, 2), alpha=float("nan")),
                                  lambda: Distill(torch.nn.Linear(2, 2), temperature=float("inf"))])
def test_transfer_penalties_refuse_nan_and_inf(make):
    with pytest.raises(ConfigError, match="must be a number"):
        make()
