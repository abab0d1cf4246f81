"""Config dataclasses as the one source of the command line: each field's type, default and help text
(written once, in `option(...)`) make its `--flag`, its YAML config key and its type check.

    @dataclass
    class MyConfig:
        epochs: int = option(1, "epochs per task")

`add_options(parser, MyConfig)` adds `--epochs` (type int, help "epochs per task (default 1)"),
`check_types(config)` refuses a value of the wrong type (YAML files and Python callers can pass
anything), `whole(config, "epochs")` a number below its least value, naming the field (`epochs`).
A field with `option(..., cli=False)` is a config key only (e.g. the per-strategy option mappings).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import ConfigError


def option(default: Any, help: str, *, cli: bool = True, metavar: str | None = None,  # noqa: A002 (argparse's name)
           choices: Any = None) -> Any:
    """A dataclass field whose `help` is its command-line help; a list default is copied per instance."""
    meta = {"help": help, "cli": cli, "metavar": metavar, "choices": choices}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def ints(text: str) -> list[int]:
    """"400,400" -> [400, 400]."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas, got {text!r}") from None


def names(text: str) -> list[str]:
    """"naive,joint" -> ["naive", "joint"]."""
    return [v.strip() for v in text.split(",") if v.strip()]


def shots(text: str) -> list[int | None]:
    """"1,5,all" -> [1, 5, None] (None: the whole training split)."""
    return [None if v == "all" else ints(v)[0] for v in names(text)]


def boolean(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _kind(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        return functools.reduce(operator.or_, [a for a in args if a is not type(None)]), True
    return hint, False


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def flag(name: str) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return f"--{name.replace('_', '-')}"


def _parser_of(hint: Any) -> tuple[Callable[[str], Any], bool]:
    """(argparse `type`, whether the flag appends: a list of names may be given comma-separated or repeated)."""
    kind, _ = _kind(hint)
    if typing.get_origin(kind) is list:
        item, optional = _kind(typing.get_args(kind)[0])
        return shots if optional else {int: ints, str: names}.get(item, names), item is str
    simple: dict[Any, Callable[[str], Any]] = {bool: boolean, int: int, float: float}
    return simple.get(kind, str), False


def argument_type(cls: type, param: inspect.Parameter) -> Callable[[str], Any]:
    """The argparse `type` of the constructor argument `param` of `cls` (a strategy's or a method's
    hyper-parameter, e.g. --ewc-lambda): from its default (a bool: true/false, a list or tuple: whole
    numbers "1,2"), or, when the default is None or missing, from its type hint (`str | None`: str)."""
    default = param.default
    if isinstance(default, bool):
        return boolean
    if isinstance(default, (tuple, list)):
        return ints
    if default is not None and default is not inspect.Parameter.empty:
        return type(default)
    try:
        hint = typing.get_type_hints(cls.__init__)[param.name]  # type: ignore[misc]
    except (NameError, KeyError):  # a hint naming a type-checking-only import, or none
        return str
    return _parser_of(hint)[0]


def _shown(value: Any) -> str:
    return ",".join("all" if v is None else str(v) for v in value) if isinstance(value, list) else str(value)


def add_options(parser: argparse.ArgumentParser | Any, cls: type) -> None:
    """One `--flag` per field of the config dataclass `cls`. Unset flags stay absent from the namespace
    (argparse.SUPPRESS), so that a --config file or a resumed run's own configuration can supply them."""
    types_ = hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = meta.get("help", "")
        if "default" not in text:
            text += f" (default {_shown(default)})" if default not in (None, "") else ""
        parse, append = _parser_of(types_[f.name])
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": text.replace("%", "%%")}
        if parse is boolean and default is False:
            kwargs["action"] = "store_true"
        else:
            kwargs |= {"type": parse, "metavar": meta.get("metavar"), "choices": meta.get("choices")}
            kwargs["action"] = "append" if append else "store"
        parser.add_argument(flag(f.name), **kwargs)


def _fits(value: Any, hint: Any) -> bool:
    kind, optional = _kind(hint)
    if value is None:
        return optional
    origin = typing.get_origin(kind)
    if origin is list:
        item = typing.get_args(kind)[0]
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if origin is dict or kind is dict:
        return isinstance(value, dict)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(kind))
    if kind is Any:
        return True
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def check_types(config: Any) -> None:
    """Every field's value must have the field's type (ints pass as floats; bools are not numbers)."""
    for name, hint in hints(type(config)).items():
        value = getattr(config, name)
        if not _fits(value, hint):
            raise ConfigError(f"config value {name}: {value!r} has the wrong type", name)


def whole_numbers(values: dict[str, object], least: int = 1, owner: str = "") -> None:
    """Raise ConfigError unless each value is a whole number >= `least`; `owner` (a strategy's name)
    qualifies the argument, as in "`buffer_size` of replay"."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            of = f" of {owner}" if owner else ""
            raise ConfigError(f"`{name}`{of} must be a whole number >= {least}, got {value!r}",
                              f"{owner}.{name}" if owner else name)


def whole(config: Any, *names_: str, least: int = 1) -> None:
    """Each named field must be a whole number >= `least` (None passes: "not given")."""
    whole_numbers({n: v for n in names_ if (v := getattr(config, n)) is not None}, least)


def _coerce(value: Any, hint: Any) -> Any:
    """A command-line or YAML value in its field's form: a list of names may come as "a,b" or as lists
    of lists (a repeated flag), a list of shots as "1,all" or [1, "all"] (all: None)."""
    kind, _ = _kind(hint)
    if typing.get_origin(kind) is not list:
        return value
    parse, append = _parser_of(kind)
    if isinstance(value, str) and (append or parse is shots):
        return parse(value)
    if isinstance(value, list) and append:
        return [v for item in value for v in (item if isinstance(item, list) else [item])]
    if isinstance(value, list) and parse is shots:
        return [None if v == "all" else v for v in value]
    return value


def build(cls: type, values: dict[str, Any], base: Any = None) -> Any:
    """`cls` from `values` (field: value), over `base`'s values when given; an unknown key is refused."""
    types_ = hints(cls)
    for key in values:
        if key not in types_:
            raise ConfigError(f"unknown config key {key!r}: valid keys are the fields of {cls.__name__} (the "
                              "command's options)", key)
    start = {} if base is None else {f.name: getattr(base, f.name) for f in dataclasses.fields(cls)}
    config = cls(**(start | {k: _coerce(v, types_[k]) for k, v in values.items()}))
    check_types(config)
    return config
