"""Bad input, tried and listed (docs/errors.md): through the CLI each gets one line on stderr and exit
code 2, through the API a LifelongError subclass; a finished run folder that was there before is left
byte for byte as it was."""

import errno
import gzip
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

import lifelong as ll
from lifelong import files
from lifelong.checkpoint import load as load_checkpoint
from lifelong.cli import main
from lifelong.data import BENCHMARKS
from lifelong.errors import ConfigError, DataError, LifelongError, StorageError
from lifelong.experiment import RunConfig, continual, make_strategy, run
from lifelong.report import write_report
from lifelong.suite import parse

TINY = ["--benchmark", "split-digits", "--n-tasks", "2", "--hidden", "16", "--epochs", "1", "--strategy", "naive"]
FMNIST = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run folder (results, config, CSV, plots, checkpoints) to copy into each test."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def keep(finished, tmp_path):
    """A copy of the finished run and a way to check that nothing in it changed."""
    out = tmp_path / "keep"
    shutil.copytree(finished, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    yield out
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lifelong: error: ") and "Traceback" not in err
    return err


def cli_usage(capsys, *argv):
    """argparse refusals exit 2 through SystemExit."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    return err


# --- data files -------------------------------------------------------------------------------------


def idx(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08}[array.dtype.type]
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fmnist_folder(root: Path, **override: bytes) -> Path:
    """A tiny but valid Fashion-MNIST folder under `root`/fashion-mnist, with some files replaced."""
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    images, labels = np.zeros((20, 28, 28), np.uint8), (np.arange(20) % 10).astype(np.uint8)
    good = {FMNIST[0]: idx(images), FMNIST[1]: idx(labels), FMNIST[2]: idx(images), FMNIST[3]: idx(labels)}
    for name, data in {**good, **override}.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def fmnist_env(monkeypatch, tmp_path):
    """Point LIFELONG_DATA at tmp_path and forget the cached real Fashion-MNIST (before and after)."""
    cache = BENCHMARKS.get("split-fmnist").factory.load
    cache.cache_clear()
    monkeypatch.setenv("LIFELONG_DATA", str(tmp_path / "data"))
    yield tmp_path / "data"
    cache.cache_clear()


IMAGES = np.zeros((20, 28, 28), np.uint8)
BAD_IDX = {
    "bad magic": ({FMNIST[0]: b"\x01\x02\x08\x03" + idx(IMAGES)[4:]}, "bad magic number"),
    "truncated": ({FMNIST[0]: idx(IMAGES)[:-100]}, "is truncated"),
    "corrupt gzip": ({FMNIST[0] + ".gz": gzip.compress(idx(IMAGES))[:50]}, "corrupt gzip"),
    "wrong image size": ({FMNIST[0]: idx(np.zeros((20, 32, 32), np.uint8))}, "expected (N, 28, 28)"),
    "labels out of range": ({FMNIST[1]: idx(np.full(20, 12, np.uint8))}, "go up to 12"),
    "images and labels differ in number": ({FMNIST[1]: idx(np.zeros(19, np.uint8))}, "shapes"),
}


@pytest.mark.parametrize("case", list(BAD_IDX))
def test_bad_idx_files(capsys, fmnist_env, keep, case):
    replaced, message = BAD_IDX[case]
    folder = fmnist_folder(fmnist_env, **replaced)  # a .gz is read before the raw file of the same name
    err = cli(capsys, "run", "--strategy", "naive", "--n-tasks", "2", "--out", keep, "--overwrite")
    assert message in err
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ll.data.fashion_mnist(folder)


# --- data given as arrays, CSV and images (API only: the CLI takes named benchmarks) -----------------


def test_nan_features():
    x = torch.randn(40, 3)
    x[5, 1] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        ll.data.arrays(x, torch.arange(40) % 2)


def test_labels_out_of_range_in_arrays():
    with pytest.raises(DataError, match="label"):
        ll.data.arrays(torch.randn(40, 3), torch.arange(40) % 2 - 1)


def test_empty_task():
    d = ll.data.digits()
    with pytest.raises(DataError, match="empty"):
        ll.data.from_tasks([(ll.data.Split(d.train.x[:0], d.train.y[:0]), d.test)])


def test_one_class_task(capsys, keep):
    err = cli(capsys, "run", *TINY[:2], "--scenario", "task", "--n-tasks", "10", "--out", keep, "--overwrite")
    assert "single class" in err
    with pytest.raises(DataError, match="single class"):
        ll.data.split(ll.data.digits(), n_tasks=10, scenario="task")


def test_csv_without_its_label_column(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(DataError, match="label"):
        ll.data.csv(tmp_path / "d.csv", label_column="label")


def test_image_folder_without_images(tmp_path):
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    with pytest.raises(DataError):
        ll.data.image_folder(tmp_path / "imgs")


# --- names, options and values ---------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "ewcc"], "unknown strategy 'ewcc'"),
    (["--benchmark", "split-fmnst"], "did you mean 'split-fmnist'"),
    (["--model", "vgg"], "unknown model 'vgg'"),
    (["--epochs", "-1"], "--epochs must be a whole number >= 1"),
    (["--seeds", "0"], "--seeds must be"),
    (["--lr", "nan"], "learning rate"),
    (["--n-tasks", "11"], "n_tasks"),
    (["--class-order", "0,0,1,2,3,4,5,6,7,8"], "class_order"),
    (["--device", "cuda"], "CUDA"),
    (["--tensorboard"], "--tensorboard writes its logs under --out"),
    (["--strategy", "replay", "--replay-buffer-size", "100000"], "larger than the 1347 training samples"),
    (["--model", "minilm"], "split-digits holds images or signals and model 'minilm' reads token ids"),
    (["--benchmark", "split-fortunes"], "split-fortunes holds token ids and model 'mlp' reads images or signals"),
    (["--freeze", "top-2"], "--freeze top-2 chooses layers of the minilm text encoder"),
])
def test_bad_values(capsys, keep, argv, message):
    if torch.cuda.is_available() and "cuda" in argv:
        pytest.skip("this machine has a GPU")
    out = [] if "--tensorboard" in argv else ["--out", keep, "--overwrite"]
    assert message in cli(capsys, "run", *TINY, *argv, *out)


@pytest.mark.parametrize("argv, config, message", [
    (["--strategy", "hat", "--scenario", "class"], {"strategy": ["hat"], "scenario": "class"}, "task id"),
    (["--model", "resnet18", "--benchmark", "split-mnist1d"], {"model": "resnet18", "benchmark": "split-mnist1d"},
     "does not fit"),
])
def test_refused_where_the_model_or_strategy_meets_the_stream(capsys, keep, tmp_path, argv, config, message):
    """Found by building the model and strategy for the stream before anything is written (`keep` checks the
    finished run under --overwrite; a new folder gets no unfinished run that could never resume)."""
    assert message in cli(capsys, "run", *TINY, *argv, "--out", keep, "--overwrite")
    assert message in cli(capsys, "run", *TINY, *argv, "--out", tmp_path / "new")
    assert not (tmp_path / "new" / "checkpoints").exists()
    with pytest.raises(ConfigError, match=message):
        run(RunConfig(**{"benchmark": "split-digits", "n_tasks": 2, "hidden": [16], **config}))


def test_unknown_option(capsys, keep):
    assert "unrecognized arguments: --ewc-lamda" in cli_usage(capsys, "run", *TINY, "--ewc-lamda", "3")
    with pytest.raises(ConfigError, match="has no option 'lamda'"):
        make_strategy("ewc", {"ewc": {"lamda": 3}})


@pytest.mark.parametrize("fields, error, message", [
    ({"strategy": ["ewcc"]}, ConfigError, "unknown strategy"),
    ({"model": "vgg"}, ConfigError, "unknown model"),
    ({"epochs": -1}, ConfigError, "`epochs` must be"),
    ({"seeds": 0}, ConfigError, "`seeds` must be"),
    ({"lr": float("nan")}, ConfigError, "learning rate"),
    ({"n_tasks": 11}, DataError, "n_tasks must be"),
    ({"class_order": [0, 0, 1, 2, 3, 4, 5, 6, 7, 8]}, DataError, "class_order"),
    ({"device": "cuda"}, ConfigError, "CUDA"),
    ({"strategy": ["gdumb"], "n_tasks": 2, "strategy_options": {"gdumb": {"buffer_size": 10**9}}}, ConfigError,
     "`buffer_size` 1000000000 is larger"),
])
def test_api_refuses_bad_values(fields, error, message):
    if "device" in fields and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(error, match=message):
        run(RunConfig(**{"benchmark": "split-digits", "hidden": [16], **fields}))


def test_api_refuses_the_same_values():
    with pytest.raises(ConfigError, match="`epochs` must be"):
        ll.Trainer(torch.nn.Linear(2, 2), epochs=-1)
    with pytest.raises(ConfigError, match="wrong type"):
        RunConfig(benchmark="split-digits", epochs="3").validate()


@pytest.mark.parametrize("text, message", [
    ("epochs: three\n", "epochs: 'three' has the wrong type"),
    ("hidden: 64\n", "hidden: 64 has the wrong type"),
    ("seeds: 1.5\n", "seeds: 1.5 has the wrong type"),
    ("lr: yes\n", "lr: True has the wrong type"),
    ("epochz: 3\n", "unknown config key 'epochz'"),
    ("[a, b]\n", "must hold a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_wrong_yaml(capsys, keep, tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    assert message in cli(capsys, "run", "--benchmark", "split-digits", "--config", tmp_path / "c.yaml",
                          "--out", keep, "--overwrite")


@pytest.mark.parametrize("text, message", [
    ("benchmarks: split-digits\nstrategies: [naive]\nseeds: two\n", "'seeds' must be a int"),
    ("benchmarks: split-digits\nstrategies: [{ewc: {lamda: 1}}]\n", "has no option 'lamda'"),
    ("benchmarks: split-digits\nstrategies: [naive]\nsettings: {epochs: -2}\n", "epochs"),
    ("benchmark: split-digits\nstrategies: [naive]\n", "unknown key 'benchmark'"),
])
def test_bad_suite(capsys, keep, tmp_path, text, message):
    (tmp_path / "s.yaml").write_text(text)
    assert message in cli(capsys, "bench", tmp_path / "s.yaml", "--out", keep)


# --- output folders and files ----------------------------------------------------------------------


def test_finished_run_is_not_overwritten(capsys, keep):
    assert "already holds a finished run" in cli(capsys, "run", *TINY, "--out", keep)


def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "f").write_text("keep me")
    assert "is a file" in cli(capsys, "run", *TINY, "--out", tmp_path / "f")
    assert (tmp_path / "f").read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out(capsys, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    assert "not writable" in cli(capsys, "run", *TINY, "--out", tmp_path / "ro")


def test_read_only_file_system(capsys, keep, monkeypatch, tmp_path):
    """A folder that cannot be written (EROFS; as root a chmod would not stop us) fails at the first write."""
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    assert "Read-only file system" in cli(capsys, "run", *TINY, "--out", tmp_path / "new")
    with pytest.raises(StorageError, match="Read-only"):
        files.atomic_write_json(keep / "results.json", {})


def test_disk_full_on_checkpoint_write(capsys, keep, monkeypatch, tmp_path):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    assert "No space left on device" in cli(capsys, "run", *TINY, "--out", tmp_path / "new")
    assert not list((tmp_path / "new").rglob("*.tmp")) and not (tmp_path / "new" / "results.json").exists()
    with pytest.raises(StorageError, match="No space left"):
        files.atomic_write_bytes(keep / "results.json", b"{}")  # the old file stays whole (checked by `keep`)


def test_disk_full_on_report_write(capsys, keep, monkeypatch, tmp_path):
    assert main(["report", str(keep), "--out", str(tmp_path / "rep")]) == 0
    before = (tmp_path / "rep" / "report.html").read_bytes()
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space")))
    assert "No space" in cli(capsys, "report", keep, "--out", tmp_path / "rep")
    assert (tmp_path / "rep" / "report.html").read_bytes() == before


def test_tampered_checkpoint(keep):
    blob = next(keep.glob("checkpoints/*.safetensors"))
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    try:
        with pytest.raises(LifelongError, match="checksum"):
            load_checkpoint(blob.with_suffix(""), ll.models.mlp(64, 10, hidden=(16,)))
    finally:
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))


def test_resume_from_a_folder_of_another_config(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["run", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    (out / "results.json").unlink()  # as if it had been killed before the end
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert "another configuration" in cli(capsys, "run", "--resume", out, "--epochs", "1")
    with pytest.raises(ConfigError, match="another configuration"):
        run(RunConfig(benchmark="split-digits", strategy=["naive"], n_tasks=2, hidden=[16], epochs=1),
            checkpoints=out / "checkpoints", resume=True)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_folder_another_process_is_writing(capsys, keep, tmp_path):
    """Two commands with one --out: the second is refused at once, --overwrite or not, and the folder is
    left to the first (`keep` checks it byte for byte)."""
    unfinished = tmp_path / "unfinished"
    shutil.copytree(keep, unfinished)
    (unfinished / "results.json").unlink()
    with files.exclusive(keep), files.exclusive(unfinished):
        assert "another lifelong process is writing to" in cli(capsys, "run", *TINY, "--out", keep, "--overwrite")
        assert "another lifelong process" in cli(capsys, "run", "--resume", unfinished)
        assert "another lifelong process" in cli(capsys, "pretrain", "--benchmark", "digits", "--out", keep,
                                                 "--overwrite")
    assert not (unfinished / "results.json").exists()
    assert main(["run", "--resume", str(unfinished)]) == 0  # free again once the first is done


def test_suite_over_a_finished_run_of_another_config(capsys, tmp_path):
    (tmp_path / "s.yaml").write_text("settings: {n_tasks: 2, hidden: [16], epochs: 1}\nbenchmarks: split-digits\n"
                                     "strategies: [naive]\n")
    assert main(["bench", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "runs")]) == 0
    results = tmp_path / "runs/split-digits/class/naive/seed0/results.json"
    before = results.read_bytes()
    (tmp_path / "s.yaml").write_text((tmp_path / "s.yaml").read_text().replace("epochs: 1", "epochs: 2"))
    assert "another configuration" in cli(capsys, "bench", tmp_path / "s.yaml", "--out", tmp_path / "runs")
    assert results.read_bytes() == before
    with pytest.raises(ConfigError):
        parse({"benchmarks": "split-digits", "strategies": ["naive"], "seeds": -1}, "s", tmp_path)


def test_report_of_nothing_or_damaged(capsys, tmp_path, keep):
    (tmp_path / "empty").mkdir()
    assert "no finished run" in cli(capsys, "report", tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text("{not json")
    assert "cannot read results file" in cli(capsys, "report", tmp_path / "bad")
    with pytest.raises(LifelongError):
        write_report([tmp_path / "bad"], tmp_path / "rep")


# --- checked before anything is written (issue 23) -------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--weight-decay", "-1"], "--weight-decay must be a finite number >= 0, got -1.0"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number >= 0, got inf"),
    (["--momentum", "-1", "--optimizer", "sgd"], "--momentum must be a finite number >= 0, got -1.0"),
    (["--momentum", "nan"], "--momentum must be a finite number >= 0, got nan"),
    (["--strategy", "ewc,ewc"], "--strategy lists 'ewc' twice"),
    (["--strategy", "ewc", "--ewc-lambda", "-1"], "--ewc-lambda"),
    (["--strategy", "ewc", "--ewc-lambda", "nan"], "--ewc-lambda of ewc must be a number >= 0, got nan"),
    (["--strategy", "online-ewc", "--online-ewc-lambda", "inf"], "--online-ewc-lambda of online-ewc must be a number"),
    (["--strategy", "si", "--si-xi", "0"], "--si-xi of si must be a number > 0, got 0.0"),
    (["--strategy", "mas", "--mas-lambda", "nan"], "--mas-lambda of mas must be a number >= 0, got nan"),
    (["--strategy", "l2", "--l2-lambda", "inf"], "--l2-lambda of l2 must be a number >= 0, got inf"),
    (["--strategy", "lwf", "--lwf-alpha", "nan"], "--lwf-alpha of lwf must be a number >= 0, got nan"),
    (["--strategy", "lwf", "--lwf-temperature", "0"], "--lwf-temperature of lwf must be a number > 0, got 0.0"),
    (["--strategy", "hat", "--scenario", "task", "--hat-c", "inf"], "--hat-c of hat must be a number >= 0, got inf"),
    (["--benchmark", "permuted-digits", "--class-order", "0,1,2,3,4,5,6,7,8,9"],
     "--class-order orders the classes of split benchmarks; this one is permuted"),
    (["--class-order", "0,1,2,3"], "class_order must list all 10 classes of digits once, got 4"),
    (["--hidden", "2000000000"], "with --hidden [2000000000] does not fit in memory (it asked for"),
    (["--strategy", "hat", "--scenario", "task", "--weight-decay", "0.1"], "which weight decay would undo"),
    (["--strategy", "ewc+oml"], "oml updates the weights from its own loss"),
])
def test_checked_before_anything_is_written(capsys, keep, tmp_path, argv, message):
    """Every run option is checked before the run folder is touched: with --overwrite the finished run
    stays byte for byte (`keep`), and a new folder gets no checkpoints/run.json of a run that could never
    resume."""
    assert message in cli(capsys, "run", *TINY, *argv, "--out", keep, "--overwrite")
    assert message in cli(capsys, "run", *TINY, *argv, "--out", tmp_path / "new")
    assert not (tmp_path / "new" / "checkpoints").exists()


def test_a_model_too_large_for_the_gpu_is_one_line_before_anything_is_written(capsys, keep, monkeypatch):
    """Moving the model to the device (in the Trainer) is where CUDA runs out of memory: simulated here."""
    def full(*_, **__):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.1 GiB total)")

    monkeypatch.setattr(continual, "Trainer", full)
    assert ("with --hidden [16] does not fit in GPU memory (it asked for 2.5 GiB): choose smaller layers"
            in cli(capsys, "run", *TINY, "--out", keep, "--overwrite"))


@pytest.mark.parametrize("fields, error, message", [
    ({"weight_decay": float("inf")}, ConfigError, "`weight_decay` must be a finite number >= 0"),
    ({"momentum": float("nan")}, ConfigError, "`momentum` must be a finite number >= 0"),
    ({"strategy": ["ewc", "naive", "ewc"]}, ConfigError, "`strategy` lists 'ewc' twice"),
    ({"benchmark": "permuted-digits", "class_order": list(range(10))}, ConfigError, "`class_order` orders"),
    ({"class_order": [3, 2, 1, 0]}, DataError, "missing \\[4, 5, 6, 7, 8, 9\\]"),
])
def test_api_checks_them_before_writing(tmp_path, fields, error, message):
    with pytest.raises(error, match=message):
        run(RunConfig(**{"benchmark": "split-digits", "n_tasks": 2, "hidden": [16], **fields}),
            checkpoints=tmp_path / "checkpoints")
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ConfigError, match="finite"):
        ll.Trainer(torch.nn.Linear(2, 2), weight_decay=float("inf"))


def test_an_option_for_a_strategy_not_in_the_run_is_a_one_line_warning(capsys):
    assert main(["run", *TINY, "--ewc-lambda", "3", "--json"]) == 0
    err = capsys.readouterr().err
    assert err == ("lifelong: warning: ignoring the options for strategy 'ewc' (lam): it is not one of the run's "
                   "strategies (naive)\n")
    assert main(["run", *TINY[:-1], "ewc+replay", "--ewc-lambda", "3", "--json"]) == 0  # composed: used
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("stem, array, message", [
    (FMNIST[1], (np.arange(20) % 10 - 1).astype(np.int16), "train labels in .* go down to -1, expected 0..9"),
    (FMNIST[2], np.full((20, 28, 28), np.nan, np.float32), "test images in .* hold NaN or infinite values"),
])
def test_idx_values_that_would_train_on_garbage(capsys, fmnist_env, keep, stem, array, message):
    from ..data.test_bad_data import idx as typed_idx

    fmnist_folder(fmnist_env, **{stem: typed_idx(array)})
    err = cli(capsys, "run", "--strategy", "naive", "--n-tasks", "2", "--out", keep, "--overwrite")
    assert re.search(message, err), err
