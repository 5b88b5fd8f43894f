"""Checkpoints: restore what was saved, refuse the wrong model loudly, survive damage."""

import json
import os
import shutil
import subprocess

import jax
import numpy as np
import pytest

from conftest import run_python, tiny_config
from gpt_jax.checkpoint import Checkpoints
from gpt_jax.errors import UserError
from gpt_jax.metrics import read_metrics
from gpt_jax.models import build_model
from gpt_jax.optim import make_optimizer
from gpt_jax.restore import load_run
from gpt_jax.state import abstract_state, init_state
from gpt_jax.trainer import train_and_evaluate


def test_restore_names_the_first_mismatched_leaf(tmp_path):
    config = tiny_config()
    model, optimizer = build_model(config.model, 65), make_optimizer(config.train)
    checkpoints = Checkpoints(tmp_path)
    checkpoints.save(5, init_state(model, optimizer, 0, 8))
    checkpoints.wait()
    wider = build_model(tiny_config(n_embd=32).model, 65)
    with pytest.raises(UserError, match=r"does not match .*: .* is float32\[64\] in the "
                                        r"checkpoint, float32\[128\] here"):
        checkpoints.restore(5, abstract_state(wider, optimizer, 8))
    deeper = build_model(tiny_config(n_layer=3).model, 65)
    with pytest.raises(UserError, match="params/block_2/.* is missing from the checkpoint"):
        checkpoints.restore(5, abstract_state(deeper, optimizer, 8))
    checkpoints.close()


def test_resuming_a_different_model_is_refused_and_changed_steps_allowed(tmp_path, capsys):
    config = tiny_config()
    config.train.num_steps = 10
    train_and_evaluate(config, tmp_path)
    other = tiny_config(n_layer=3)
    other.train.num_steps = 20
    with pytest.raises(UserError, match=r"different model \(model.n_layer: 2 → 3\)"):
        train_and_evaluate(other, tmp_path)
    restarted = tiny_config()
    restarted.model.init = "torch"  # nothing to do with a model that exists: said so
    with pytest.raises(UserError, match=r"model.init: 'gpt2' → 'torch' only decides how a new "
                                        r"run's parameters start"):
        train_and_evaluate(restarted, tmp_path)
    config.train.num_steps, config.train.learning_rate = 20, 2e-3
    config.model.dropout = 0.1  # the same parameters, trained on with dropout
    record = train_and_evaluate(config, tmp_path)
    out = capsys.readouterr().out
    assert "train.num_steps: 10 → 20" in out and "train.learning_rate: 0.001 → 0.002" in out
    assert "model.dropout: 0.0 → 0.1" in out
    assert record["step"] == 20


def test_a_run_copied_elsewhere_still_samples(tmp_path):
    """The copy alone, its original gone, gives the same params and the same sample."""
    from gpt_jax.generation import sample_texts

    config = tiny_config()
    config.train.num_steps = 10
    train_and_evaluate(config, tmp_path / "a")
    original = load_run(tmp_path / "a")
    here = sample_texts(original.model, original.params, original.tokenizer,
                        config.model.block_size, "To", 20, seed=3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    copy = load_run(tmp_path / "b")
    assert copy.step == 10
    for x, y in zip(jax.tree.leaves(original.state), jax.tree.leaves(copy.state), strict=True):
        np.testing.assert_array_equal(x, y)
    there = sample_texts(copy.model, copy.params, copy.tokenizer, config.model.block_size, "To",
                         20, seed=3)
    assert there == here and len(there[0]) == 20


def test_the_checkpoint_of_the_lowest_val_loss_is_kept_beside_the_newest(tmp_path):
    """Unit: keep=2 keeps the two newest and the best scored one; unscored saves never win."""
    val_losses = [3.0, 2.0, 2.5, None, 2.6, 2.7]
    for keep_best, kept in ((True, [2, 5, 6]), (False, [5, 6])):
        checkpoints = Checkpoints(tmp_path / str(keep_best), keep=2, keep_best=keep_best)
        for step, val_loss in enumerate(val_losses, 1):
            checkpoints.save(step, {"w": np.full(3, float(step))}, val_loss)
        checkpoints.wait()
        assert checkpoints.steps() == kept
        assert checkpoints.best_step() == (2 if keep_best else 5)
        assert checkpoints.restore(kept[0], {"w": np.zeros(3)})["w"].tolist() == [kept[0]] * 3
        checkpoints.close()


def test_the_closing_line_names_the_lowest_val_loss_that_has_no_checkpoint(tmp_path, capsys):
    """A run that only gets worse: its lowest val loss is step 0's, which no checkpoint holds.
    It said that the lowest val loss was at a later step, and its checkpoint kept."""
    config = tiny_config()
    config.train.update(dict(num_steps=30, eval_interval=10, checkpoint_every=10,
                             keep_checkpoints=1, learning_rate=3.0))
    train_and_evaluate(config, tmp_path)
    records = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path)}
    assert min(records, key=records.get) == 0
    kept = min((step for step in records if step), key=records.get)
    out = capsys.readouterr().out
    assert (f"the lowest val loss of the checkpoints kept, {records[kept]:.4f}, was at step "
            f"{kept}" in out), out
    assert f"the run's lowest, {records[0]:.4f} at step 0, has no checkpoint" in out


def test_a_step_evaluated_again_after_a_stop_competes_for_the_best_checkpoint(tmp_path, capsys):
    """A stop during step 40's evaluation saves step 40 without its val loss (what this test
    leaves by removing it, and the metrics' record). The resumed run evaluated step 40 again,
    the lowest of the run, but its checkpoint was rotated away at the next save, and the
    closing line named an older one as the best kept."""
    config = tiny_config()
    config.train.update(dict(num_steps=40, eval_interval=20, checkpoint_every=10,
                             keep_checkpoints=1, learning_rate=3.0))
    train_and_evaluate(config, tmp_path)
    shutil.rmtree(tmp_path / "checkpoints" / "40" / "metrics")
    records = read_metrics(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records if r["step"] != 40))
    config.train.update(dict(num_steps=60, eval_interval=10))
    capsys.readouterr()
    train_and_evaluate(config, tmp_path)
    val = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path) if r["step"]}
    assert min(val, key=val.get) == 40  # at this rate the run is at its best there
    assert Checkpoints(tmp_path, read_only=True).steps() == [40, 60]
    assert load_run(tmp_path, best=True).step == 40
    assert (f"the lowest val loss of the checkpoints kept, {val[40]:.4f}, was at step 40"
            in capsys.readouterr().out)


def test_an_overfitting_run_keeps_its_best_checkpoint_to_sample_and_resumes_from_its_newest(
        tmp_path, capsys):
    config = tiny_config()  # at this rate the val loss is lowest at step 12 of 16
    config.train.update(dict(num_steps=16, eval_interval=2, checkpoint_every=8,
                             keep_checkpoints=1, learning_rate=0.1))
    train_and_evaluate(config, tmp_path)
    records = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path)}
    best = min(records, key=records.get)
    assert best == 12 and records[16] > records[12]
    assert (f"the lowest val loss, {records[12]:.4f}, was at step 12: its checkpoint is kept"
            in capsys.readouterr().out)
    newest, kept = load_run(tmp_path), load_run(tmp_path, best=True)
    assert (newest.step, kept.step) == (16, 12)  # 12: saved as a new best, between checkpoints
    assert Checkpoints(tmp_path, read_only=True).steps() == [12, 16]
    assert not np.array_equal(newest.params["lm_head"]["kernel"], kept.params["lm_head"]["kernel"])
    config.train.num_steps = 18  # resuming continues from the newest, not the best
    assert train_and_evaluate(config, tmp_path)["step"] == 18
    assert read_metrics(tmp_path)[-2]["step"] == 16
    result = run_python(["-m", "gpt_jax.sample", f"--workdir={tmp_path}", "--best", "--step=4"])
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "--best and --step" in result.stderr
    for flags, step in ((["--best"], 12), (["--step=12"], 12), ([], 18)):  # the one asked
        result = run_python(["-m", "gpt_jax.sample", f"--workdir={tmp_path}", *flags,
                             "--max_new_tokens=5"])
        assert result.returncode == 0 and f"sample(s) from step {step} in" in result.stderr, (
            result.stderr)


def test_without_keep_best_checkpoint_only_the_newest_are_kept(tmp_path, capsys):
    """train.keep_best_checkpoint=False: the overfitting run above saves no step for its val
    loss and keeps its newest checkpoint alone; the closing line, and --best, say no
    checkpoint holds the lowest val loss."""
    config = tiny_config()
    config.train.update(dict(num_steps=16, eval_interval=2, checkpoint_every=8,
                             keep_checkpoints=1, learning_rate=0.1, keep_best_checkpoint=False))
    train_and_evaluate(config, tmp_path)
    records = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path)}
    assert min(records, key=records.get) == 12
    assert Checkpoints(tmp_path, read_only=True).steps() == [16]
    out = capsys.readouterr().out
    assert "its checkpoint is kept" not in out and f"{records[12]:.4f}" in out, out
    # --best takes the best kept, and says that the lowest has none (it said nothing)
    assert load_run(tmp_path, best=True).step == 16
    assert capsys.readouterr().err == (
        f"warning: the lowest val loss, {records[12]:.4f} at step 12, has no checkpoint; "
        f"--best restores step 16 (val loss {records[16]:.4f}), the best of those kept\n")
    (tmp_path / "metrics.jsonl").unlink()  # nothing to compare with: nothing said (it crashed)
    assert load_run(tmp_path, best=True).step == 16 and capsys.readouterr().err == ""


def test_a_best_checkpoint_scored_on_the_data_before_a_change_is_said_to_be(tmp_path,
                                                                           capsys, shakespeare):
    """20 steps on tiny Shakespeare, then 4 on random characters of its vocabulary: the best
    checkpoint kept is one scored on the first text, whose val loss compares with nothing
    after the change. The closing line and `--best` say so (they named it as the best), and
    data.json records the step of the change."""
    config = tiny_config()
    config.train.update(dict(num_steps=20, eval_interval=10, checkpoint_every=10,
                             learning_rate=1e-2))
    train_and_evaluate(config, tmp_path / "run")
    noise = tmp_path / "noise.txt"
    chars = sorted(set(shakespeare))
    noise.write_text("".join(np.random.default_rng(0).choice(chars, 20_000)))
    config.data.path, config.train.num_steps, config.train.eval_interval = str(noise), 24, 2
    capsys.readouterr()
    train_and_evaluate(config, tmp_path / "run")
    out, err = capsys.readouterr()
    assert "resuming on other data" in err
    assert json.loads((tmp_path / "run" / "data.json").read_text())["since_step"] == 20
    assert "was scored on the data this run trained on until step 20, where its data " \
           "changed" in out, out
    best = load_run(tmp_path / "run", best=True).step
    assert best <= 20 and capsys.readouterr().err == (
        f"warning: the best checkpoint, at step {best}, was scored on the data this run "
        f"trained on until step 20, where its data changed: its val loss does not compare "
        f"with the later ones' (--step=N chooses another)\n")


def test_the_step_of_a_data_change_follows_the_checkpoint_resumed(tmp_path):
    """data.json's since_step: 0 for a new run; the resumed step where the data changed; kept
    on the same data, unless the run resumed before it (newer checkpoints deleted or set
    aside: the one resumed was trained on the data before, so the change is there)."""
    from gpt_jax.resume import data_since, record_data

    record_data(tmp_path, "a", None)
    assert data_since(tmp_path) == 0
    record_data(tmp_path, "b", 4)  # other data from step 4
    assert data_since(tmp_path) == 4
    record_data(tmp_path, "b", 6)
    assert data_since(tmp_path) == 4
    record_data(tmp_path, "b", 2)  # back at step 2, of the data before
    assert data_since(tmp_path) == 2


@pytest.mark.parametrize("garbled", ["garbage", '{"val_loss": true}', '{"val_loss": -1.0}'])
def test_a_garbled_val_loss_file_is_set_aside_and_its_checkpoint_still_restores(tmp_path,
                                                                                capsys, garbled):
    """Not JSON, or not a loss (true would count as 1.0, and -1 would always be the best)."""
    config = tiny_config()
    config.train.update(dict(num_steps=10, eval_interval=5, checkpoint_every=5))
    train_and_evaluate(config, tmp_path)
    score = tmp_path / "checkpoints" / "10" / "metrics" / "metrics"
    assert score.is_file()
    score.write_text(garbled)
    assert load_run(tmp_path).step == 10
    with pytest.raises(UserError, match=r"the val loss saved with the checkpoint at step 10 "
                                        r"cannot be read .*: the best checkpoint is unknown; "
                                        r"choose one with --step \(available: 5, 10\)"):
        load_run(tmp_path, best=True)  # step 10 may be the best: not a silent step 5
    config.train.num_steps = 15
    assert train_and_evaluate(config, tmp_path)["step"] == 15
    err = capsys.readouterr().err
    assert "the val loss saved with the checkpoint at step 10 is damaged: moved to" in err
    assert [p.name.split(".")[:2] for p in (tmp_path / "checkpoints_damaged").iterdir()] == [
        ["10", "metrics"]]
    assert load_run(tmp_path, step=10).step == 10
    # The file set aside, step 10 competes with the val loss its metrics row holds.
    records = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path)}
    kept = Checkpoints(tmp_path, read_only=True).steps()
    assert kept == [5, 10, 15]
    assert load_run(tmp_path, best=True).step == min(kept, key=records.get)


def test_a_checkpoint_deleted_while_it_is_read_is_not_called_damaged(tmp_path, capsys):
    """A run training in the workdir deletes its oldest checkpoints as it saves; a sampler
    reading one of them at that moment takes the next one, with no word of damage."""
    checkpoints = Checkpoints(tmp_path, keep=3)
    for step in (1, 2, 3):
        checkpoints.save(step, {"w": np.full(3, float(step))})
    checkpoints.wait()
    reader = Checkpoints(tmp_path, read_only=True)
    read = reader.restore

    def deleted_as_it_is_read(step, target):
        if step == 3:
            shutil.rmtree(tmp_path / "checkpoints" / "3")
        return read(step, target)

    reader.restore = deleted_as_it_is_read
    step, tree = reader.restore_newest_good({"w": np.zeros(3)})
    assert step == 2 and tree["w"].tolist() == [2.0] * 3
    assert "damaged" not in capsys.readouterr().err
    reader.restore = lambda step, target: (shutil.rmtree(tmp_path / "checkpoints" / "2"),
                                           read(step, target))[1]
    with pytest.raises(UserError, match="at step 2 .* was deleted while it was read"):
        reader.restore_newest_good({"w": np.zeros(3)}, step=2)
    # --best: the run keeps its best too, and deleted it for a better one (or a newer one)
    reader.restore = lambda step, target: (shutil.rmtree(tmp_path / "checkpoints" / "1"),
                                           read(step, target))[1]
    with pytest.raises(UserError, match="^the best checkpoint, at step 1 in .*, was deleted "
                                        "while it was read: a run training there saved a "
                                        "better or a newer one in its place"):
        reader.restore_newest_good({"w": np.zeros(3)}, step=1, best=True)
    reader.close()
    checkpoints.close()


def test_a_workdir_moved_away_while_the_run_trains_is_said_as_such(tmp_path):
    """`mv RUN RUN2` during training: the next save failed with "no earlier checkpoint exists"
    (or orbax's "params are missing .zarray"), though they were all in RUN2 and restore."""
    checkpoints = Checkpoints(tmp_path / "run", keep=2)
    checkpoints.save(1, {"w": np.full(3, 1.0)})
    checkpoints.wait()
    (tmp_path / "run").rename(tmp_path / "run2")  # (orbax would make the folders again)
    with pytest.raises(UserError, match=r"^cannot save the checkpoint of step 2: .*/run/"
                                        r"checkpoints is gone \(the workdir was moved or deleted "
                                        r"while the run trained\); the checkpoints saved before "
                                        r"went with it$"):
        checkpoints.save(2, {"w": np.full(3, 2.0)}, val_loss=1.0)
        checkpoints.wait()
    checkpoints.close()
    moved = Checkpoints(tmp_path / "run2", read_only=True)
    assert moved.restore_newest_good({"w": np.zeros(3)})[0] == 1
    moved.close()


def test_a_checkpoint_replaced_while_it_is_read_gives_way_to_the_newer_one(tmp_path, capsys):
    """A run keeping one checkpoint saves step 2 and deletes step 1 while a sampler reads it:
    the sampler listed again before looking (it said no checkpoint was left), and takes 2."""
    checkpoints = Checkpoints(tmp_path, keep=1, keep_best=False)
    checkpoints.save(1, {"w": np.full(3, 1.0)})
    checkpoints.wait()
    reader = Checkpoints(tmp_path, read_only=True)
    read = reader.restore

    def replaced_as_it_is_read(step, target):
        if step == 1:
            checkpoints.save(2, {"w": np.full(3, 2.0)})
            checkpoints.wait()
        return read(step, target)

    reader.restore = replaced_as_it_is_read
    step, tree = reader.restore_newest_good({"w": np.zeros(3)})
    assert step == 2 and tree["w"].tolist() == [2.0] * 3
    assert "damaged" not in capsys.readouterr().err
    reader.close()
    checkpoints.close()


def test_a_damaged_chosen_checkpoint_is_named_with_the_others(tmp_path):
    """--step or --best on a damaged checkpoint said no checkpoint could be restored, though
    the others, never tried, restore fine."""
    checkpoints = Checkpoints(tmp_path, keep=3)
    for step in (1, 2, 3):
        checkpoints.save(step, {"w": np.full(3, float(step))})
    checkpoints.wait()
    for f in (tmp_path / "checkpoints" / "2").rglob("*"):
        if f.is_file() and f.parent.name == "d":  # the arrays' bytes, not their metadata
            f.write_bytes(b"garbage")
    for best, chosen in ((False, "the checkpoint at step 2 in .*"),
                         (True, "the best checkpoint, at step 2 in .*,")):
        with pytest.raises(UserError, match=f"^{chosen} is damaged \\(.*\\); the others: 1, 3 "
                                            f"\\(choose one with --step\\)$"):
            checkpoints.restore_newest_good({"w": np.zeros(3)}, step=2, best=best)
    assert checkpoints.restore_newest_good({"w": np.zeros(3)}, step=3)[0] == 3
    checkpoints.close()


def test_a_damaged_checkpoint_with_a_file_where_it_would_be_set_aside_is_one_error(tmp_path):
    checkpoints = Checkpoints(tmp_path, keep=3)
    for step in (1, 2):
        checkpoints.save(step, {"w": np.full(3, float(step))})
    checkpoints.wait()
    for f in (tmp_path / "checkpoints" / "2").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")
    (tmp_path / "checkpoints_damaged").write_text("not a folder")
    with pytest.raises(UserError, match="checkpoints_damaged, where it would be set aside, is a "
                                        "file"):
        checkpoints.restore_newest_good({"w": np.zeros(3)}, quarantine=True)
    assert (tmp_path / "checkpoints" / "2").is_dir()  # nothing moved, nothing lost
    checkpoints.close()


def test_a_damaged_val_loss_with_a_file_where_it_would_be_set_aside_is_one_error(tmp_path):
    """The same for a step's val-loss file, set aside as the checkpoints open (it raised
    FileExistsError); nor does the line say that the run starts over, as the checkpoint of
    every step still restores."""
    checkpoints = Checkpoints(tmp_path, keep=3)
    for step in (1, 2):
        checkpoints.save(step, {"w": np.full(3, float(step))}, val_loss=float(step))
    checkpoints.close()
    (tmp_path / "checkpoints" / "2" / "metrics" / "metrics").write_text("garbage")
    (tmp_path / "checkpoints_damaged").write_text("not a folder")
    with pytest.raises(UserError, match=r"^the val loss saved with the checkpoint at step 2 is "
                                        r"damaged, and .*checkpoints_damaged, where it would be "
                                        r"set aside, is a file: move that file away$"):
        Checkpoints(tmp_path, keep=3)
    assert (tmp_path / "checkpoints" / "2" / "metrics" / "metrics").read_text() == "garbage"


def _undeletable(folder):
    """Makes `folder` impossible to delete for this user (immutable for root, whom
    permissions do not stop); returns the undo, or None where neither way works here."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            return None
        return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o500)
    return lambda: folder.chmod(0o700)


def test_an_old_checkpoint_that_cannot_be_deleted_stops_nothing(tmp_path, capsys):
    """The rotation deletes the oldest checkpoint after a save: where that fails (a folder
    that cannot be deleted) the new checkpoint is complete, so training goes on, with one
    warning, instead of stopping on 'cannot save the checkpoint of step N'."""
    checkpoints = Checkpoints(tmp_path, keep=1, keep_best=False)
    checkpoints.save(1, {"w": np.full(3, 1.0)})
    checkpoints.wait()
    undo = _undeletable(tmp_path / "checkpoints" / "1" / "default")
    if undo is None:
        pytest.skip("no way to make a folder undeletable on this file system")
    try:
        for step in (2, 3):
            checkpoints.save(step, {"w": np.full(3, float(step))})
            checkpoints.wait()
        checkpoints.close()
    finally:
        undo()
    err = capsys.readouterr().err
    assert err.count("warning: the checkpoint of step 2 is saved, but an older one that it "
                     "replaces could not be deleted (") == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert Checkpoints(tmp_path, read_only=True).restore(3, {"w": np.zeros(3)})["w"][0] == 3.0


def test_a_checkpoint_this_user_cannot_read_is_not_called_damaged(tmp_path):
    """Permission denied is not damage: the older checkpoint was restored in its place with
    "damaged" in the warning, and a resuming trainer moved the unread one aside."""
    import errno
    import os

    checkpoints = Checkpoints(tmp_path, keep=3)
    for step in (1, 2):
        checkpoints.save(step, {"w": np.full(3, float(step))})
    checkpoints.wait()
    read = checkpoints.restore

    def denied(step, target):
        if step == 2:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path))
        return read(step, target)

    checkpoints.restore = denied
    with pytest.raises(UserError, match=r"cannot read the checkpoint at step 2 in .*: "
                                        r"Permission denied; give this user read access"):
        checkpoints.restore_newest_good({"w": np.zeros(3)}, quarantine=True)
    assert checkpoints.steps() == [1, 2] and not (tmp_path / "checkpoints_damaged").exists()
    checkpoints.close()


def test_a_checkpoint_saved_without_its_val_loss_competes_with_the_metrics_one(tmp_path):
    """A stop during the evaluation of step N saves N without its val loss; the resumed run
    evaluates N again and writes it to metrics.jsonl. --best read only the checkpoints' own
    scores, so N never competed, however low its loss."""
    checkpoints = Checkpoints(tmp_path, keep=3)
    checkpoints.save(1, {"w": np.zeros(3)}, 3.0)
    checkpoints.save(2, {"w": np.ones(3)})  # the evaluation was interrupted
    checkpoints.wait()
    assert checkpoints.best_step() == 1
    assert checkpoints.best_step({1: 3.0, 2: 2.5}) == 2
    assert checkpoints.best_step({1: 3.0, 2: 3.5}) == 1
    assert checkpoints.best_step({1: 0.1}) == 1  # a step's own score is the one that counts
    assert checkpoints.best_step({1: 0.1, 2: 2.0}) == 2
    checkpoints.close()


@pytest.mark.parametrize("me, said", [
    (1, "process 0 of this run, which holds jax's coordination service, failed or was stopped"),
    (0, "another process of this run failed or was stopped (jax's coordination service lost "
        "it)")])
@pytest.mark.parametrize("grpc", [
    "UNAVAILABLE: Socket closed",
    "UNAVAILABLE: failed to connect to all addresses; last error: UNKNOWN: "
    "ipv4:127.0.0.1:5: Failed to connect to remote host: Connection refused"])
def test_a_multi_process_save_that_lost_the_coordination_service_says_which_process(
        monkeypatch, grpc, me, said):
    """A coordinator killed while the other process waited at orbax's save barrier: the
    save's reason was gRPC's wording (orbax's TimeoutError around it), which names no process
    of the run. One process alone has no barrier: the same words are then said as they are."""
    from gpt_jax import checkpoint

    error = TimeoutError(f"Timeout waiting at barrier 'save'. The original error raised was: "
                         f"{grpc}\nAdditional GRPC error information: ...")
    assert checkpoint.describe_failure(error).startswith("TimeoutError: Timeout waiting")
    monkeypatch.setattr(checkpoint.jax, "process_count", lambda: 2)
    monkeypatch.setattr(checkpoint.jax, "process_index", lambda: me)
    assert checkpoint.describe_failure(error) == said
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = error
    assert checkpoint.describe_failure(wrapped) == said
    assert checkpoint.describe_failure(OSError(28, "No space left on device")) == \
        "No space left on device"


def test_a_restore_that_lost_the_coordination_service_sets_no_checkpoint_aside(tmp_path,
                                                                               monkeypatch):
    """A restore's barrier broken by a process that died was read as damage: process 0 moved
    the good checkpoint aside and tried an older one."""
    from gpt_jax import checkpoint

    checkpoints = Checkpoints(tmp_path)
    for step in (1, 2):
        checkpoints.save(step, {"w": np.full(3, step, np.float32)})
        checkpoints.wait()

    def lost(step, target):
        raise TimeoutError("Timeout waiting at barrier. The original error raised was: "
                           "UNAVAILABLE: Socket closed")

    monkeypatch.setattr(checkpoints, "restore", lost)
    monkeypatch.setattr(checkpoint.jax, "process_count", lambda: 2)
    monkeypatch.setattr(checkpoint.jax, "process_index", lambda: 0)
    with pytest.raises(UserError, match=r"cannot read the checkpoint at step 2 in \S+: another "
                                        r"process of this run failed or was stopped"):
        checkpoints.restore_newest_good({"w": np.zeros(3)}, quarantine=True)
    assert checkpoints.steps() == [1, 2]
    assert not (tmp_path / "checkpoints_damaged").exists()
    checkpoints.close()
