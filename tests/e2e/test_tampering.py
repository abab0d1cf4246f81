"""Files of an unfinished run that were edited or copied in from another run, through the real entry
point: `--resume` passes over an edited state for an older intact one, or refuses in one line (exit 2)
naming the file and a command that works, and never writes numbers the run did not compute."""

import dataclasses
import json
import shlex
import shutil

import pytest

import lifelong as ll
from lifelong import checkpointing
from lifelong.checkpoint import PAUSE_ENV
from lifelong.cli import build_config, main, parser
from lifelong.experiment import load_results, run
from lifelong.files import seal

RUN = ["run", "--benchmark", "split-digits", "--n-tasks", "2", "--hidden", "8", "--batch-size", "64",
       "--strategy", "naive", "--strategy", "ewc", "--checkpoint-every", "3"]
PAUSE = "ewc-seed0:step:20"  # in task 1 of the second fit (11 steps per task), after the state of step 18


@pytest.fixture(scope="module")
def reference():
    """The accuracy matrices of the uninterrupted run, in this process, without files."""
    config = build_config(parser().parse_args(RUN))
    return [r["matrix"] for r in run(dataclasses.replace(config, checkpoint_every=0))]


def interrupted(monkeypatch, capsys, args, where=PAUSE):
    """Run `args` through `main`, interrupted at `where` (as a kill there would leave the folder)."""
    def stop(point):
        raise KeyboardInterrupt(point)

    with monkeypatch.context() as m:
        m.setenv(PAUSE_ENV, where)
        m.setattr(checkpointing, "hold", stop)
        assert main(args) == 130
    capsys.readouterr()


def resume(capsys, out, *more):
    code = main(["run", "--resume", str(out), *more])
    _, err = capsys.readouterr()
    return code, err.strip().splitlines()


def edit(path, change):
    """Change `path`'s JSON as an editor would: the values, not the digest."""
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info, indent=1))


def states(out, fit="ewc-seed0"):
    return sorted((out / "checkpoints" / f"{fit}.resume").glob("state-*.json"))


def files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def finished_with(out, reference):
    assert [r["matrix"] for r in load_results(out / "results.json")["runs"]] == reference


def edit_matrix(info):
    matrix = info["values"]["progress"]["matrix"]
    matrix[0][0] = round(matrix[0][0] + 0.1, 4)


def edit_position(info):
    position = info["values"]["position"]
    position["batch"], position["n_batches"] = position["batch"] + 64, position["n_batches"] + 1


@pytest.mark.parametrize(("where", "change"), [("ewc-seed0:task:0", edit_matrix), (PAUSE, edit_position)])
def test_an_edited_state_is_passed_over_for_an_older_intact_one(tmp_path, monkeypatch, capsys, reference, where,
                                                                change):
    """The newest state: at a task's end (the matrix a resume continues), or inside a task (its position)."""
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)], where)
    newest = states(out)[-1]
    edit(newest, change)
    code, err = resume(capsys, out)
    finished_with(out, reference)
    assert code == 0 and err == [f"lifelong: warning: state {newest} was altered (its digest does not match its "
                                 "contents): resuming from an older state"]


def test_when_every_state_is_edited_the_fit_is_refused_and_the_advice_works(tmp_path, monkeypatch, capsys,
                                                                            reference):
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    for path in states(out):
        edit(path, lambda info: info["values"].update(step=info["values"]["step"] + 1))
    before = files(out)
    code, err = resume(capsys, out)
    folder = out / "checkpoints" / "ewc-seed0.resume"
    assert code == 2 and err[-1].startswith(f"lifelong: error: none of the {len(states(out))} saved states")
    assert f"state {states(out)[-1]} was altered" in err[-1] and f"(`rm -r {folder}`)" in err[-1]
    assert files(out) == before and not any("error" in line for line in err[:-1])
    shutil.rmtree(folder)  # as the message says: that fit starts again from its start
    assert resume(capsys, out)[0] == 0
    finished_with(out, reference)


def copied(monkeypatch, capsys, tmp_path, options, what):
    """An interrupted run, and `what` of the naive fit ("record") or the ewc fit ("states") copied in from
    a run with other `options`."""
    out, other = tmp_path / "run", tmp_path / "other"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    interrupted(monkeypatch, capsys, [*RUN, *options, "--out", str(other)])
    if what == "record":
        shutil.copy(other / "checkpoints" / "naive-seed0.record.json", out / "checkpoints")
    else:
        shutil.rmtree(out / "checkpoints" / "ewc-seed0.resume")
        shutil.copytree(other / "checkpoints" / "ewc-seed0.resume", out / "checkpoints" / "ewc-seed0.resume")
    return out


def test_an_edited_record_is_refused_and_the_advice_works(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    record = out / "checkpoints" / "naive-seed0.record.json"
    edit(record, lambda info: info["records"][0].update(acc=0.99))
    before = files(out)
    code, err = resume(capsys, out)
    assert code == 2 and err == [f"lifelong: error: {record} was altered (its digest does not match its contents): "
                                 f"delete it (`rm {record}`) and resume again to redo that part of the run"]
    assert files(out) == before
    record.unlink()
    assert resume(capsys, out)[0] == 0
    finished_with(out, reference)


def other_class_order():
    """The class order drawn from seed 0 with the first two classes swapped: tasks of the same classes
    and sizes, labelled otherwise."""
    order = ll.data.benchmark("split-digits", n_tasks=2, seed=0).info["class_order"]
    return ",".join(map(str, [order[1], order[0], *order[2:]]))


def test_a_record_of_another_configuration_is_refused(tmp_path, monkeypatch, capsys):
    out = copied(monkeypatch, capsys, tmp_path, ["--lr", "0.01"], "record")
    before = files(out)
    code, err = resume(capsys, out)
    record = out / "checkpoints" / "naive-seed0.record.json"
    assert code == 2 and err == [f"lifelong: error: {record} was written by a run of another configuration or "
                                 f"lifelong version: delete it (`rm {record}`) and resume again to redo that part "
                                 "of the run"]
    assert files(out) == before


@pytest.mark.parametrize(("options", "key"), [(["--class-order", other_class_order()], "classes"),
                                              (["--lr", "0.01"], "lr")])
def test_the_states_of_another_configuration_are_refused(tmp_path, monkeypatch, capsys, options, key):
    out = copied(monkeypatch, capsys, tmp_path, options, "states")
    before = files(out)
    code, err = resume(capsys, out)
    folder = out / "checkpoints" / "ewc-seed0.resume"
    assert code == 2 and len(err) == 1
    assert f"the states in {folder} were saved by a fit with another {key} (" in err[0]
    assert err[0].endswith(f"by deleting that folder (`rm -r {folder}`)") and files(out) == before


def test_one_state_of_another_configuration_inside_the_fit_is_refused(tmp_path, monkeypatch, capsys):
    """Only the newest state (saved inside a task, on an intact base) copied in from a run with another lr."""
    out, other = tmp_path / "run", tmp_path / "other"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    interrupted(monkeypatch, capsys, [*RUN, "--lr", "0.01", "--out", str(other)])
    newest = states(out)[-1]
    assert json.loads(newest.read_text())["base"] is not None  # a state inside the task
    for suffix in (".json", ".safetensors"):
        shutil.copy(states(other)[-1].with_suffix(suffix), newest.with_suffix(suffix))
    before = files(out)
    code, err = resume(capsys, out)
    folder = out / "checkpoints" / "ewc-seed0.resume"
    assert code == 2 and len(err) == 1 and files(out) == before
    assert err[0].startswith(f"lifelong: error: the states in {folder} were saved by a fit with another lr (")


def test_a_record_copied_over_another_units_is_refused(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    record = out / "checkpoints" / "ewc-seed0.record.json"
    shutil.copy(out / "checkpoints" / "naive-seed0.record.json", record)  # ewc, not finished, "done" as naive
    before = files(out)
    code, err = resume(capsys, out)
    assert code == 2 and err == [f"lifelong: error: {record} holds the records of naive-seed0.record.json, another "
                                 f"part of the run: delete it (`rm {record}`) and resume again to redo that part of "
                                 "the run"]
    assert files(out) == before
    record.unlink()
    assert resume(capsys, out)[0] == 0
    finished_with(out, reference)


@pytest.mark.parametrize("key", ["setup", "strategy_values", "position"])
def test_a_state_without_a_part_is_refused_even_with_a_matching_digest(tmp_path, monkeypatch, capsys, key):
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    for path in states(out):  # every one, so that no older state is fallen back to
        info = json.loads(path.read_text())
        del info["digest"]
        info["values"].pop(key, None)
        path.write_text(json.dumps(seal(info)))  # a deliberate edit, with the digest written anew
    before = files(out)
    code, err = resume(capsys, out)
    assert code == 2 and len(err) == 1 and files(out) == before
    assert err[0].startswith("lifelong: error: state ") and f"has no '{key}': redo this fit" in err[0]


def test_an_edited_run_file_is_refused_and_the_advice_works(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "run"
    interrupted(monkeypatch, capsys, [*RUN, "--out", str(out)])
    run_file = out / "checkpoints" / "run.json"
    edit(run_file, lambda info: info["config"].update(class_order=[int(c) for c in other_class_order().split(",")]))
    before = files(out)
    code, err = resume(capsys, out)
    assert code == 2 and len(err) == 1 and files(out) == before
    command = f"lifelong run --config {out / 'checkpoints' / 'config.json'} --out {out} --overwrite"
    assert err[0] == f"lifelong: error: {run_file} was altered (its digest does not match its contents): start it " \
        f"over with `{command}`"
    assert main(shlex.split(command)[1:]) == 0
    finished_with(out, reference)
