"""Property-based fuzzing (Hypothesis) of what a user types: random YAML text, random config files of
every command and random command lines go through the real entry point (`cli.main`) up to where an
experiment would start, which is stubbed. Each is either accepted or refused with the library's own
error (a LifelongError: one line, exit code 2; argparse: SystemExit(2)); no other exception escapes,
and the finished run folder given as --out (with --overwrite) is never written to."""

import argparse
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from lifelong import cli
from lifelong.configs import hints, read_yaml
from lifelong.errors import LifelongError
from lifelong.experiment import EXPERIMENTS, RunConfig
from lifelong.experiment.tune import SPEC_KEYS
from lifelong.suite import SUITE_KEYS

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 100)), deadline=None,  # FUZZ_EXAMPLES=5000: longer
                suppress_health_check=[HealthCheck.function_scoped_fixture])
COMMANDS = sorted(EXPERIMENTS)
# words that get past the first checks, so that the later ones are reached too
WORDS = ["split-digits", "split-fmnist", "permuted-fmnist", "digits", "digits:0-4", "sinusoid", "ewc", "replay",
         "naive", "ewc+replay", "dann", "coral", "maml", "finetune", "features", "mlp", "cnn", "class", "task",
         "domain", "sgd", "adam", "cpu", "cuda", "tpu", "meta", "all", "backbone", "none", "1,2", "0-4", ""]
TOKENS = ["0", "1", "2", "-1", "1.5", "nan", "inf", "-inf", "1e400", "99999999999999999999", "true", "abc",
          "--", "-", "--=", *WORDS]
NOT_FUZZED = {"-h", "--help", "--version", "--out", "--resume", "--config", "--overwrite", "--nproc", "--tensorboard"}


class Started(Exception):
    """The configuration passed every check and the experiment would start now."""


def _refuse_to_start(*_: object, **__: object) -> None:
    raise Started


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder that holds a finished run (as --out sees one), and its bytes, to check it is left alone;
    experiments stop where they would start."""
    out = tmp_path_factory.mktemp("fuzz") / "run"
    for name, text in {"results.json": "{}", "config.json": "{}", "checkpoints/run.json": "{}",
                       "checkpoints/t0.safetensors": "x"}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    with pytest.MonkeyPatch.context() as patch:
        for kind in EXPERIMENTS.values():
            patch.setattr(kind, "execute", _refuse_to_start)
        for name in ("lifelong.suite.run_suite", "lifelong.suite.run_suite_ray", "lifelong.experiment.tune.tune"):
            patch.setattr(name, _refuse_to_start)  # `bench` and `tune`
        yield out, snapshot(out)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def outcome(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path, before: dict[str, bytes]) -> str:
    """Run the command line; check the property; say how it ended."""
    try:
        code = cli.main([*argv, "--out", str(out), "--overwrite"])
    except Started:
        ended = "started"
    except SystemExit as exit_:
        assert exit_.code == 2, argv  # argparse's refusal
        ended = "usage"
    else:
        assert code == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("lifelong: error: ") and err.count("\n") == 1, err
        ended = "refused"
    capsys.readouterr()
    assert snapshot(out) == before, argv
    return ended


def option_names(command: str) -> list[str]:
    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted({o for a in sub.choices[command]._actions for o in a.option_strings} - NOT_FUZZED)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70), st.floats(),
                    st.text(max_size=10), st.sampled_from(WORDS))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8) | st.sampled_from(WORDS), inner, max_size=3), max_leaves=8)


@st.composite
def config_files(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A command and a config of it: keys of its config class, its method options' flags, and any text."""
    command = draw(st.sampled_from(COMMANDS))
    keys = sorted(hints(EXPERIMENTS[command].config_class)) + sorted(cli.method_options(EXPERIMENTS[command]))
    config = draw(st.dictionaries(st.sampled_from([*keys, "epochz", "", "<<"]), values, max_size=5))
    return command, config


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command and its options, mostly `--option value` (a value may be a list "a,b" or an `--opt=value`)."""
    command = draw(st.sampled_from(COMMANDS))
    word = st.sampled_from(TOKENS) | st.integers().map(str) | st.text(max_size=6)
    number = st.integers(-2, 5).map(str) | st.floats().map(str)
    value = number | word | st.lists(st.sampled_from(TOKENS), min_size=2, max_size=3).map(",".join)
    pair = st.tuples(st.sampled_from(option_names(command)), value)
    tokens = [t for p in draw(st.lists(pair.map(list) | pair.map(lambda p: [f"{p[0]}={p[1]}"]), max_size=5)) for t in p]
    stray = draw(st.none() | word)  # now and then a word out of place
    return [command, *tokens] if stray is None else [command, *tokens, stray]


@FUZZ
@given(text=st.text(max_size=200) | st.sampled_from(["a: &x 1\nb: *x\n", "a: 1\na: 2\n", "[" * 100, "!!binary x"]))
def test_any_yaml_text_is_read_or_refused_in_one_line(tmp_path, text):
    path = tmp_path / "f.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        read_yaml(path, "config file")
    except LifelongError as err:
        assert "\n" not in str(err)


@FUZZ
@given(case=config_files())
@example(case=("transfer", {"shots": ":"}))  # found by this test: the list parser's error escaped
def test_random_config_files(finished, capsys, tmp_path, case):
    out, before = finished
    command, config = case
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    event(outcome([command, "--config", str(path)], capsys, out, before))


@FUZZ
@given(argv=command_lines())
@example(argv=["pretrain", "--threads=--"])  # found by this test: argparse gave [] without calling the type
def test_random_command_lines(finished, capsys, argv):
    out, before = finished
    event(outcome(argv, capsys, out, before))


@st.composite
def suites_and_specs(draw: st.DrawFn) -> tuple[str, dict[str, object]]:
    """A suite (`bench`) or a tune spec (`tune`): a valid one with random keys and values put over it."""
    options = st.dictionaries(st.sampled_from(["lam", "buffer_size", "samples", "ewc", "replay"]), values, max_size=2)
    strategy = st.sampled_from(["naive", "ewc", "replay"]) | st.dictionaries(
        st.sampled_from(["ewc", "replay", "ewc+replay"]), options, min_size=1, max_size=1)
    run_options = st.dictionaries(st.sampled_from([*sorted(hints(RunConfig)), "ewc_lambda", "epochz"]), values,
                                  max_size=3)
    if draw(st.booleans()):
        suite = {"settings": {"n_tasks": 2, "hidden": [8]}, "benchmarks": ["split-digits"], "strategies": ["naive"]}
        keys = st.sampled_from([*sorted(SUITE_KEYS), "command", "sweep", "benchmark"])
        over = {"strategies": st.lists(strategy, max_size=3), "settings": run_options,
                "grids": st.lists(st.dictionaries(keys, values | run_options, max_size=3), max_size=2)}
        return "bench", suite | draw(st.fixed_dictionaries({}, optional=over)) | draw(st.dictionaries(keys, values,
                                                                                                     max_size=2))
    spec = {"base": {"benchmark": "split-digits", "validation": 0.2, "strategy": "ewc"},
            "search": {"ewc.lam": {"grid": [1, 2]}}}
    search = st.dictionaries(st.sampled_from(["ewc.lam", "lr", "ewc.lambda", "replay.buffer_size", "seed", "x.y"]),
                             st.dictionaries(st.sampled_from(["grid", "choice", "uniform", "loguniform", "randint",
                                                              "other"]), values, min_size=1, max_size=1), max_size=2)
    over = {"base": run_options.map(lambda o: spec["base"] | o), "search": search}
    return "tune", spec | draw(st.fixed_dictionaries({}, optional=over)) | draw(st.dictionaries(
        st.sampled_from([*SPEC_KEYS, "other"]), values, max_size=2))


@FUZZ
@given(case=suites_and_specs())
@example(case=("bench", {"command": {}}))  # found by this test: an unhashable command
@example(case=("tune", {"base": {"strategy_options": None}, "search": {"ewc.lam": {"grid": [1]}}}))  # and this
def test_random_suites_and_tune_specs(finished, capsys, tmp_path, case):
    command, data = case
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        assert cli.main([command, str(path), "--out", str(tmp_path / "out")]) == 2
    except Started:
        event("started")
    else:
        err = capsys.readouterr().err
        assert err.startswith("lifelong: error: ") and err.count("\n") == 1, err
        assert not (tmp_path / "out").exists()
        event("refused")
    capsys.readouterr()
