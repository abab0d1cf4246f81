"""Config dataclasses as the one source of the command line: each field's type, default and help text
(written once, in `option(...)`) make its `--flag`, its YAML config key and its type check.

    @dataclass
    class MyConfig:
        epochs: int = option(1, "epochs per task")

`option_specs(MyConfig)` describes `--epochs` (type "int", help "epochs per task (default 1)") as plain
data (the command line caches it: `lifelong.catalog`), `add_options(parser, specs)` adds the flags,
`check_types(config)` refuses a value of the wrong type (YAML files and Python callers can pass
anything), `whole(config, "epochs")` a number below its least value, naming the field (`epochs`).
A field with `option(..., cli=False)` is a config key only (e.g. the per-strategy option mappings).
`read_yaml` reads a config, suite or tune file that may be hostile: no aliases, no key given twice,
at most `MAX_YAML_BYTES`, UTF-8.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import functools
import inspect
import operator
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

MAX_YAML_BYTES = 2**20  # a config, suite or tune file is a few lines of options
INT64 = 2**63  # whole numbers in a config lie in [-INT64, INT64), as torch's seeds and sizes need


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


PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "boolean": boolean, "ints": ints,
                                            "names": names, "shots": shots}  # argparse `type`s by name


def _parser_of(hint: Any) -> tuple[str, bool]:
    """(the name of its argparse `type` in PARSERS, whether the flag appends: a list of names may be given
    comma-separated or repeated)."""
    kind, _ = _kind(hint)
    if typing.get_origin(kind) is list:
        item, optional = _kind(typing.get_args(kind)[0])
        return "shots" if optional else {int: "ints", str: "names"}.get(item, "names"), item is str
    return {bool: "boolean", int: "int", float: "float"}.get(kind, "str"), False


def argument_type(cls: type, param: inspect.Parameter) -> str:
    """The argparse `type` of the constructor argument `param` of `cls` (a strategy's or a method's
    hyper-parameter, e.g. --ewc-lambda): from its default (a bool: true/false, a list or tuple: whole
    numbers "1,2"), or, when the default is None or missing, from its type hint (`str | None`: str)."""
    default = param.default
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, (tuple, list)):
        return "ints"
    if default is not None and default is not inspect.Parameter.empty:
        if type(default).__name__ not in PARSERS:
            raise TypeError(f"{cls.__name__}({param.name}=...): no command-line type for a {type(default).__name__}")
        return type(default).__name__
    try:
        hint = typing.get_type_hints(cls.__init__)[param.name]  # type: ignore[misc]
    except (NameError, KeyError):  # a hint naming a type-checking-only import, or none
        return "str"
    return _parser_of(hint)[0]


def _shown(value: Any) -> str:
    return ",".join("all" if v is None else str(v) for v in value) if isinstance(value, list) else str(value)


def option_specs(cls: type) -> list[dict[str, Any]]:
    """One `--flag` per field of the config dataclass `cls`, as `add_options` takes it: plain data (JSON)."""
    types_ = hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = meta.get("help", "")
        if "default" not in text:
            text += f" (default {_shown(default)})" if default not in (None, "") else ""
        parse, append = _parser_of(types_[f.name])
        spec: dict[str, Any] = {"flag": flag(f.name), "dest": f.name, "help": text.replace("%", "%%")}
        if parse == "boolean" and default is False:
            spec["action"] = "store_true"
        else:
            spec |= {"type": parse, "metavar": meta.get("metavar"), "action": "append" if append else "store"}
            spec |= {"choices": list(meta["choices"])} if meta.get("choices") is not None else {}
        specs.append(spec)
    return specs


def add_options(parser: argparse.ArgumentParser | Any, specs: list[dict[str, Any]]) -> None:
    """The flags of `option_specs` (or of a method's options: the same form). Unset flags stay absent from
    the namespace (argparse.SUPPRESS), so that a --config file or a resumed run's own configuration can
    supply them."""
    for spec in specs:
        kwargs = {k: v for k, v in spec.items() if k != "flag"} | {"default": argparse.SUPPRESS}
        if "type" in kwargs:
            kwargs["type"] = PARSERS[kwargs["type"]]
        parser.add_argument(spec["flag"], **kwargs)


def _fits(value: Any, hint: Any) -> bool:
    kind, optional = _kind(hint)
    if value is None:
        return optional or kind is Any
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (list, tuple, collections.abc.Sequence):  # YAML gives lists where a tuple is meant
        if not isinstance(value, list if origin is list else (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or kind is dict:
        return isinstance(value, dict) and (not args or all(_fits(k, args[0]) and _fits(v, args[1])
                                                            for k, v in value.items()))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if kind is Any:
        return True
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    try:
        return isinstance(value, kind)
    except TypeError:  # a hint that isinstance cannot check (a Protocol): the callee's to check
        return True


def _out_of_range(value: Any) -> bool:
    """Whether `value` is or holds a whole number outside 64 bits (torch's seeds and sizes)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -INT64 <= value < INT64
    if isinstance(value, (list, tuple)):
        return any(map(_out_of_range, value))
    return isinstance(value, dict) and any(map(_out_of_range, value.values()))


def _type_name(hint: Any) -> str:
    """`int`, `list[int] | None`: a type hint as Python code writes it."""
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "").replace("collections.abc.", "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _check_value(value: Any, hint: Any, what: str, argument: str) -> None:
    """A ConfigError naming `what` (the config value or argument) unless `value` fits `hint` and 64 bits."""
    if not _fits(value, hint):
        raise ConfigError(f"{what}: {_short(value)} has the wrong type (expected {_type_name(hint)})", argument)
    if _out_of_range(value):
        raise ConfigError(f"{what}: {_short(value)} is out of range: whole numbers lie from -2**63 to 2**63 - 1",
                          argument)


def check_types(config: Any) -> None:
    """Every field's value must have the field's type (ints pass as floats; bools are not numbers) and its
    whole numbers fit in 64 bits."""
    for name, hint in hints(type(config)).items():
        _check_value(getattr(config, name), hint, f"config value {name}", name)


def check_arguments(cls: type, values: dict[Any, Any], owner: str) -> None:
    """Each of `values` (argument: value, e.g. from a YAML file) must fit the type of `cls`'s constructor
    argument of that name (its type hint, else its default's type), checked before `cls` is called with
    them; names that `cls` does not take are left to the caller. `owner` names `cls` ("ewc")."""
    params = inspect.signature(cls).parameters
    try:
        types_ = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except NameError:  # a hint naming a type-checking-only import
        types_ = {}
    for name, value in values.items():
        param = params.get(name) if isinstance(name, str) else None
        if param is not None:
            default = param.default
            unknown = default is None or default is inspect.Parameter.empty
            _check_value(value, types_.get(name, Any if unknown else type(default)), f"`{name}` of {owner}",
                         f"{owner}.{name}")


def whole_numbers(values: dict[str, object], least: int = 1, owner: str = "") -> None:
    """Raise ConfigError unless each value is a whole number >= `least`; `owner` (a strategy's name)
    qualifies the argument, as in "`buffer_size` of replay"."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            of = f" of {owner}" if owner else ""
            raise ConfigError(f"`{name}`{of} must be a whole number >= {least}, got {value!r}",
                              f"{owner}.{name}" if owner else name)


def non_negative(values: dict[str, object], owner: str = "", positive: bool = False) -> None:
    """Raise ConfigError unless each value is a finite number >= 0 (> 0 with `positive`): NaN and inf are
    refused by name here, not blamed later on the learning rate. `owner` as in `whole_numbers`."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf") \
                or (positive and value == 0):
            of = f" of {owner}" if owner else ""
            raise ConfigError(f"`{name}`{of} must be a number {'>' if positive else '>='} 0, got {value!r}",
                              f"{owner}.{name}" if owner else name)


def whole(config: Any, *names_: str, least: int = 1) -> None:
    """Each named field must be a whole number >= `least` (None passes: "not given")."""
    whole_numbers({n: v for n in names_ if (v := getattr(config, n)) is not None}, least)


def _coerce(value: Any, hint: Any) -> Any:
    """A command-line or YAML value in its field's form: a list of names may come as "a,b" or as a list
    of lists (a repeated flag; a mixed list such as [a, [b]] is left to the type check), a list of shots as
    "1,all" or [1, "all"] (all: None)."""
    kind, _ = _kind(hint)
    if typing.get_origin(kind) is not list:
        return value
    parse, append = _parser_of(kind)
    if isinstance(value, str) and (append or parse == "shots"):
        return PARSERS[parse](value)
    if isinstance(value, list) and append and all(isinstance(item, list) for item in value):
        return [v for item in value for v in item]
    if isinstance(value, list) and parse == "shots":
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
    coerced = {}
    for key, value in values.items():
        try:
            coerced[key] = _coerce(value, types_[key])
        except argparse.ArgumentTypeError as err:  # "1,x" for a list of whole numbers
            raise ConfigError(f"config value {key}: {err}", key) from None
    config = cls(**(start | coerced))
    check_types(config)
    return config


MAX_DEPTH = 32  # levels of nesting in a YAML file: options nest a few levels deep


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's where installed) refusing a mapping that gives a key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: refused by the constructor itself
                twice = False
            if twice:
                raise _Refused(f"gives the key {_short(key)} twice (line {key_node.start_mark.line + 1}): keep one")
        return super().construct_mapping(node, deep)


class _Refused(Exception):
    """A YAML file refused for its shape; the message follows the file's name."""


def _check_nodes(root: yaml.Node) -> None:
    """Refuse aliases (a node reached twice: `*name` repeats the node of `&name`, so that a few hundred
    bytes can expand to billions of values) and nesting deeper than MAX_DEPTH, without recursion."""
    seen: set[int] = set()
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise _Refused(f"repeats the value of line {node.start_mark.line + 1} with a YAML alias (*name): aliases "
                           "are refused (a few of them can expand to billions of values): write the value out")
        seen.add(id(node))
        if depth > MAX_DEPTH:
            raise _Refused(f"nests values more than {MAX_DEPTH} levels deep (line {node.start_mark.line + 1})")
        if isinstance(node, yaml.SequenceNode):
            stack += [(n, depth + 1) for n in node.value]
        elif isinstance(node, yaml.MappingNode):
            stack += [(n, depth + 1) for pair in node.value for n in pair]


def read_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML file at `path` (a config, suite or tune file, "config file" in `what`), read as one
    that may be hostile: at most MAX_YAML_BYTES of UTF-8, safe tags only, no aliases, no key given twice,
    at most MAX_DEPTH levels deep. Anything else is a one-line ConfigError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_YAML_BYTES // 2**20} MB: a {what} holds a few lines "
                          "of options")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {err.start}): save it as UTF-8") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except _Refused as err:
        raise ConfigError(f"{what} {path} {err}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{what} {path} is not valid YAML: {err.problem or err.context}{where}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:  # Python's YAML parser, where libyaml is missing, nests by recursion
        raise ConfigError(f"{what} {path} nests values more than {MAX_DEPTH} levels deep") from None
    finally:
        loader.dispose()
