"""What a run shows: metrics.jsonl, TensorBoard events, loss.png, samples; the ladder report."""

import contextlib
import io
import json
import re

import pytest
import tqdm.std

from conftest import REPO, tiny_config
from gpt_jax.errors import UserError
from gpt_jax.ladder import report, run_step
from gpt_jax.optim import learning_rate_schedule
from gpt_jax.trainer import Trainer, train_and_evaluate


def _tiny(steps=20):
    config = tiny_config()
    config.description, config.reference_val_loss = "a tiny GPT", 3.0
    config.train.num_steps = steps
    config.sample.max_new_tokens = 20
    return config


def test_a_run_writes_metrics_events_plot_and_samples(tmp_path, capsys):
    config = _tiny()
    config.train.update(dict(lr_schedule="cosine", warmup_steps=5, loss_plot=True))
    train_and_evaluate(config, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 10, 20]
    schedule = learning_rate_schedule(config.train)
    for record in records:
        assert set(record) == {"step", "train_loss", "val_loss", "tokens_per_s", "lr",
                               "grad_norm"}
        # the rate of the update that ended at this step (the trainer reads it from a table)
        # (none at step 0, which no update ended, as its grad_norm)
        expected = float(schedule(record["step"] - 1)) if record["step"] else None
        assert record["lr"] == pytest.approx(expected)
    assert records[0]["tokens_per_s"] is None and records[-1]["tokens_per_s"] > 0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert samples == ["step_000000.txt", "step_000010.txt", "step_000020.txt"]
    out = capsys.readouterr().out
    assert "model gpt: 8,769 parameters" in out and "block_0" in out  # the model summary
    assert "step     10 | loss" in out  # plain progress lines when not on a terminal


def test_ladder_step_is_read_back_when_finished(tmp_path, capsys):
    first = run_step("tiny", _tiny(), tmp_path / "tiny")
    assert first["num_steps"] == 20 and first["params"] == 8769
    assert [p["step"] for p in first["curve"]] == [0, 10, 20]
    mtime = (tmp_path / "tiny" / "seed_1337" / "metrics.jsonl").stat().st_mtime_ns
    again = run_step("tiny", _tiny(), tmp_path / "tiny")
    # read back, not trained: the ladder leaves its report as it was for such a step
    assert first["trained"] and not again["trained"]
    untrained = lambda r: {k: v for k, v in r.items() if k not in ("trained", "runs")}
    assert untrained(again) == untrained(first)
    assert [untrained(r) for r in again["runs"]] == [untrained(r) for r in first["runs"]]
    assert (tmp_path / "tiny" / "seed_1337" / "metrics.jsonl").stat().st_mtime_ns == mtime
    assert "finished before, read back" in capsys.readouterr().out
    reworded = _tiny()  # how a row is shown is not how it trained: read back, shown anew
    reworded.description, reworded.reference_val_loss = "a tiny GPT, reworded", 0.0
    shown = run_step("tiny", reworded, tmp_path / "tiny")
    assert not shown["trained"] and shown["description"] == "a tiny GPT, reworded"
    for field, value in (("train.num_steps", 30), ("train.learning_rate", 3e-3),
                         ("model.n_embd", 32)):
        other = _tiny()
        section, name = field.split(".")
        other[section][name] = value
        with pytest.raises(UserError, match=f"trained with other settings \\({field}: "):
            run_step("tiny", other, tmp_path / "tiny")  # never reused, never overwritten
    assert (tmp_path / "tiny" / "seed_1337" / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_a_finished_run_rerun_with_the_loss_plot_on_draws_it(tmp_path):
    """Trained with train.loss_plot=False, the same command with the plot on has no step left
    to train: it evaluated, sampled and exited without loss.png."""
    config = _tiny(steps=4)
    config.train.update(dict(eval_interval=4, loss_plot=False))
    train_and_evaluate(config, tmp_path)
    assert not (tmp_path / "loss.png").exists()
    config.train.loss_plot = True
    train_and_evaluate(config, tmp_path)
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("steps, expected", [(2, None), (5000, [0, 1000, 2000, 3000, 4000,
                                                                 5000])])
def test_the_loss_plots_mark_whole_steps_only(tmp_path, monkeypatch, steps, expected):
    """A run of two steps drew "0.25 0.5 ... 2.0" under its curve: steps are whole numbers,
    and a long run's ticks stay round (not 0, 600, ..., 4800)."""
    import matplotlib.pyplot as plt

    from gpt_jax import plots
    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig))
    records = [{"step": 0, "train_loss": 4.2, "val_loss": 4.1},
               {"step": steps, "train_loss": 3.2, "val_loss": 3.3}]
    plots.plot_losses(records, tmp_path / "loss.png")
    plots.plot_ladder({"bigram": records, "gpt": [{**r, "val_loss": 9.0} for r in records],
                       "modern": records}, {}, tmp_path / "ladder.png")
    axes = [ax for fig in figures for ax in fig.axes]
    assert len(axes) == 3  # the loss plot, the ladder and its zoom
    shown = [[t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
             for ax in axes]
    for ticks in shown:
        assert len(ticks) >= 2 and all(t == round(t) for t in ticks), ticks
    assert expected is None or shown[:2] == [expected] * 2, shown
    assert axes[2].get_xlim()[0] > steps / 2 - steps / 20  # the zoom: the second half only
    for fig in figures:
        plt.close(fig)


def test_report_table_has_a_row_per_step():
    row = {"step": "head", "description": "one head", "params": 7553, "num_steps": 5000,
           "train_loss": 2.38, "val_loss": 2.40, "reference_val_loss": 2.4, "wall_s": 21.0,
           "sample": "To be |or\nnot", "ms_per_step": 1.5,
           "runs": [{"val_loss": 2.39}, {"val_loss": 2.41}]}
    table = report([row, {**row, "step": "multihead", "val_loss": 2.30, "runs": []},
                    {**row, "step": "ffwd", "val_loss": 2.25, "runs": []}])
    lines = table.splitlines()
    assert lines[0].startswith("| step | adds | params")
    assert "| head | one head | 7,553 | 5,000 | 2.380 | **2.400** (2.390, 2.410) |  | 2.40 | " \
           "1.5 | 21 s | `To be \\|or⏎not` |" in table
    assert "| multihead | one head | 7,553 | 5,000 | 2.380 | **2.300** | -0.100 | 2.40 |" in table
    # Δ against the row before it, not the first
    assert "| ffwd | one head | 7,553 | 5,000 | 2.380 | **2.250** | -0.050 | 2.40 |" in table
    assert "Total wall time of the runs: 84 s." in table  # 2 runs of head, 1 of the others
    assert "Δ val: the change of the val loss from the step before." in table


def test_the_pairs_table_says_its_rows_are_alternatives():
    """The encoder-decoder and the GPT on pairs are two answers to one task: its Δ is not
    "from the step before" as on the ladder, where each step builds on the one above."""
    row = {"step": "encoder_decoder", "description": "", "params": 1, "num_steps": 1,
           "train_loss": 0.1, "val_loss": 0.1, "val_exact_match": 0.5, "wall_s": 1.0,
           "sample": "", "ms_per_step": 1.0, "runs": [], "reference_val_loss": 0.0}
    table = report([row, {**row, "step": "gpt_on_pairs", "val_loss": 0.05}])
    assert "| **0.050** | -0.050 | 50.0% | 1.0 |" in table
    assert ("Δ val: the change of the val loss from the row above (the rows are alternatives "
            "on the same pairs, not steps built on each other).") in table
    assert "step before" not in table


def test_rows_without_a_lecture_figure_or_a_step_to_build_on():
    """A modern rung has no lecture figure (it showed the CPU GPT's 1.88); the scaled GPT
    builds on no row before it (with --full --modern, rope's Δ was taken against it); a |
    in a description would split its cell."""
    row = {"step": "gpt_cpu", "description": "a GPT | for a CPU", "params": 1, "num_steps": 1,
           "train_loss": 1.8, "val_loss": 1.75, "reference_val_loss": 1.88, "wall_s": 1.0,
           "sample": "", "ms_per_step": 1.0, "runs": []}
    table = report([row, {**row, "step": "gpt", "val_loss": 1.50, "reference_val_loss": 1.48},
                    {**row, "step": "rope", "val_loss": 1.72, "reference_val_loss": 0.0}])
    assert "| gpt_cpu | a GPT \\| for a CPU | 1 | 1 | 1.800 | **1.750** |  | 1.88 |" in table
    assert "| gpt | a GPT \\| for a CPU | 1 | 1 | 1.800 | **1.500** |  | 1.48 |" in table
    assert "| rope | a GPT \\| for a CPU | 1 | 1 | 1.800 | **1.720** | -0.030 |  | 1.0 |" in table


def test_a_row_s_description_and_figures_read_as_written():
    """A description's <BOS> vanished in a markdown viewer (an HTML tag) and a newline broke
    the table; an unchanged loss read -0.000; nothing said which seeds the figures are, or in
    what unit."""
    row = {"step": "pairs", "description": "source<BOS>target\nand more", "params": 1,
           "num_steps": 1, "train_loss": 1.8, "val_loss": 1.75, "reference_val_loss": 0.0,
           "wall_s": 1.0, "sample": "", "ms_per_step": 1.0, "seeds": [1337, 1],
           "runs": [{"val_loss": 1.74, "seed": 1337}, {"val_loss": 1.76, "seed": 1}]}
    table = report([row, {**row, "step": "same", "val_loss": 1.7499999, "seeds": [7],
                          "runs": [{"val_loss": 1.7499999, "seed": 7}]}])
    assert "| pairs | source&lt;BOS&gt;target⏎and more | 1 |" in table
    assert "| **1.750** | +0.000 |" in table
    assert ("Losses in nats per character (per token on a BPE dataset). Where a val loss has "
            "figures in parentheses, they are those of seeds 1337 and 1, in that order, and "
            "the bold figure, the train loss and the wall time their means; the sample is seed "
            "1337's. Steps of one seed: seed 7.") in table


def test_a_step_s_rate_weights_each_interval_by_its_time():
    """Two intervals of 10 steps at 1,000 and 4,000 tokens/s took 10/1000 + 10/4000 s: the
    run's rate is 1,600 tokens/s, not the plain mean, 2,500, which made ms/step too low."""
    from gpt_jax.metrics import steady_tokens_per_s

    records = [{"step": 0, "tokens_per_s": None}, {"step": 10, "tokens_per_s": 1000.0},
               {"step": 20, "tokens_per_s": 4000.0}]
    assert steady_tokens_per_s(records) == pytest.approx(1600.0)
    assert steady_tokens_per_s(records[:1]) is None


def test_a_resumed_step_s_wall_time_is_marked_as_a_part():
    row = {"step": "head", "description": "one head", "params": 7553, "num_steps": 5000,
           "train_loss": 2.38, "val_loss": 2.40, "reference_val_loss": 2.4, "wall_s": 21.0,
           "sample": "", "ms_per_step": 1.5, "runs": [], "resumed": True}
    table = report([row])
    assert "| 1.5 | 21 s* |" in table and "*: resumed from a checkpoint" in table
    assert "resumed" not in report([{**row, "resumed": False}])


@pytest.mark.parametrize("spec", ["configs/shakespeare_char_cpu.py", "configs/seq2seq.py",
                                  "configs/seq2seq.py:gpt"])
def test_the_ladder_s_tokens_per_step_are_the_trainer_s(spec):
    """ms/step is tokens per step over the trainer's tokens/s: both must count the same
    tokens (an encoder–decoder's step reads its sources too: its ms/step read 4× too low)."""
    from gpt_jax.config import load_config_file
    from gpt_jax.task import load_task, tokens_per_step

    config = load_config_file(spec)
    assert tokens_per_step(config) == load_task(config).tokens_per_step


def test_a_step_over_seeds_averages_them_and_keeps_each(tmp_path):
    result = run_step("tiny", _tiny(steps=10), tmp_path / "tiny", seeds=(1, 2))
    assert [r["seed"] for r in result["runs"]] == [1, 2]
    assert (tmp_path / "tiny" / "seed_1").is_dir() and (tmp_path / "tiny" / "seed_2").is_dir()
    losses = [r["val_loss"] for r in result["runs"]]
    assert losses[0] != losses[1]  # other seeds, other inits and batches
    for key in ("val_loss", "train_loss", "wall_s"):
        assert result[key] == pytest.approx(sum(r[key] for r in result["runs"]) / 2), key
    # the mean of the seeds' times per step, not of their rates
    ms = [1000 * 8 * 8 / r["tokens_per_s"] for r in result["runs"]]  # block 8 × batch 8
    assert result["ms_per_step"] == pytest.approx(sum(ms) / 2)


def test_tokens_per_second_count_every_chunk_since_the_last_pause_however_their_ends_arrive(
        monkeypatch):
    """On a GPU a chunk's losses could reach the host only when the next chunk ended too: the
    rate since the last pause is the same however the time falls between the two chunks."""
    from gpt_jax import reporting

    now = [100.0]
    monkeypatch.setattr(reporting.time, "perf_counter", lambda: now[0])
    rates = []
    for split in (0.1, 0.2, 0.0):  # the first chunk's end seen 0.1, 0.2 or 0 s into the 0.2 s
        clock = reporting.ChunkClock(tokens_per_step=50)
        now[0] += split
        clock.chunk_done(10)
        now[0] += 0.2 - split
        clock.chunk_done(10)
        rates.append(clock.rate())
    assert rates == [pytest.approx(20 * 50 / 0.2)] * 3
    now[0] += 5.0  # an evaluation ...
    clock.restart()  # ... does not count
    now[0] += 0.1
    clock.chunk_done(10)
    assert clock.rate() == pytest.approx(10 * 50 / 0.1)


class _Terminal(io.StringIO):
    """Stands in for stdout on a terminal: the run draws its tqdm bar here."""

    def isatty(self) -> bool:
        return True


def test_the_bar_s_rate_and_eta_count_training_steps_only(tmp_path, monkeypatch):
    """On a clock where each step takes 0.5 s, the start-up 20 s more, and each evaluation,
    sample and save 1,000, 500 and 100 s, every rate the bar draws is 2 steps/s and every ETA
    the steps left over 2. Counted as steps, the step-0 evaluation made the first reading
    about 1,500 s/step (days of ETA for the scaled GPT on a CPU), and each later one a dip."""
    now = [0.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])  # the bar's clock, read at its start
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0)  # no thread on the real clock

    def taking(seconds, method):
        def timed(*args, **kwargs):
            now[0] += seconds(*args)
            return method(*args, **kwargs)
        return timed

    config = _tiny()
    config.train.steps_per_call = 1  # one step per chunk: each step's loss is drawn alone
    terminal = _Terminal()
    with contextlib.redirect_stdout(terminal):
        trainer = Trainer(config, tmp_path)
        try:
            # a chunk's steps end when the host fetches their losses, in _check(first, n, ...)
            trainer._check = taking(lambda first, n, *_: 0.5 * n + (20 if first == 0 else 0),
                                    trainer._check)
            trainer.evaluate = taking(lambda: 1000, trainer.evaluate)
            trainer.sample = taking(lambda _: 500, trainer.sample)
            trainer.save = taking(lambda *_: 100, trainer.save)
            trainer.run()
        finally:
            trainer.close()
    draws = re.findall(r"(\d+)/20 \[[\d:]+<([\d:?]+), *([\d.?]+(?:step/s|s/step))",
                       terminal.getvalue())
    # the bar opens after the first step: nothing timed yet
    assert draws[0] == ("1", "?", "?step/s")
    timed = {int(n): (left, rate) for n, left, rate in draws[1:]}
    assert sorted(timed) == list(range(2, 21))  # each step drawn, those after evaluations too
    for n, (left, rate) in timed.items():
        assert (rate, left) == ("2.00step/s", tqdm.std.tqdm.format_interval((20 - n) / 2)), n


def test_the_report_written_mid_ladder_keeps_the_later_steps_that_finished(tmp_path, capsys):
    """A rerun that retrains a middle step wrote the report with the rows reached so far: an
    interrupted one left a table without the later steps, which had finished. Their rows are
    read back (nothing trained, nothing said) up to the first step that has not finished."""
    from gpt_jax.ladder import finished_after

    bigger = _tiny()
    bigger.model.n_embd = 32
    planned = [("tiny", _tiny(), ()), ("bigger", bigger, ())]
    for name, config, _ in planned:
        run_step(name, config, tmp_path / name)
    capsys.readouterr()
    mtime = (tmp_path / "bigger" / "seed_1337" / "metrics.jsonl").stat().st_mtime_ns
    assert [r["step"] for r in finished_after(planned, tmp_path)] == ["tiny", "bigger"]
    assert [r["val_loss"] for r in finished_after(planned[1:], tmp_path)] == [
        run_step("bigger", bigger, tmp_path / "bigger")["val_loss"]]
    capsys.readouterr()
    changed = _tiny()
    changed.train.num_steps = 30  # not finished with these settings: the rows stop before it
    assert finished_after([("tiny", changed, ()), planned[1]], tmp_path) == []
    assert [r["step"] for r in finished_after([planned[0], ("tiny2", _tiny(), ())],
                                              tmp_path)] == ["tiny"]  # never trained
    assert not (tmp_path / "tiny2").exists() and capsys.readouterr().out == ""
    assert (tmp_path / "bigger" / "seed_1337" / "metrics.jsonl").stat().st_mtime_ns == mtime


def test_a_ladder_step_s_description_names_the_overrides_that_changed_its_model():
    """`--config.model.n_head=2` for the whole ladder: the head and multihead rows are then
    the same model, and gpt_cpu is no longer "4 layers, 4 heads, 128 wide"; each row says
    what changed it, and the bigram, whose model reads neither field, is left as it is."""
    from gpt_jax.ladder import step_config

    overrides = {"model.n_head": 2, "model.n_embd": 32, "train.num_steps": 10}
    described = {spec: step_config(REPO / "configs" / spec, overrides).description
                 for spec in ("bigram.py", "lecture.py:multihead", "shakespeare_char_cpu.py")}
    assert described["bigram.py"].endswith("alone")
    assert described["lecture.py:multihead"].endswith(
        "(the config file's description; this run sets model.n_head=2)")
    assert described["shakespeare_char_cpu.py"] == (
        "a GPT sized for a CPU: 4 layers, 4 heads, 128 wide, block 64 (the config file's "
        "description; this run sets model.n_head=2, model.n_embd=32)")


def test_a_ladder_of_other_data_or_training_shows_no_lecture_figure_beside_its_losses(tmp_path):
    """The lecture's 2.50 … 1.88 are nats per character of tiny Shakespeare after its own
    steps: beside a ladder on another corpus (perhaps of BPE tokens), of 10 steps or of another
    width they compare nothing with nothing (ladder.png drew them at step 10). How a run is
    measured, logged or saved leaves them."""
    from gpt_jax.ladder import step_config

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some other text entirely\n" * 200)
    for spec in ("bigram.py", "shakespeare_char_cpu.py"):
        assert step_config(REPO / "configs" / spec, {}).reference_val_loss > 0
        assert step_config(REPO / "configs" / spec, {"train.eval_iters": 10, "train.seed": 1,
                                                      "train.log_interval": 7,
                                                      "data.on_device_budget_mb": 0,
                                                      "description": "mine"}
                           ).reference_val_loss > 0
        assert step_config(REPO / "configs" / spec, {"train.num_steps": 10,
                                                      "reference_val_loss": 1.9}
                           ).reference_val_loss == 1.9  # the user's own figure
        for other in ({"train.num_steps": 10}, {"data.path": str(corpus)},
                      {"train.learning_rate": 0.1}):
            assert step_config(REPO / "configs" / spec, other).reference_val_loss == 0, other
    assert step_config(REPO / "configs" / "shakespeare_char_cpu.py", {"model.n_embd": 64}
                       ).reference_val_loss == 0


def test_a_field_read_only_with_a_switch_changes_only_the_steps_that_have_it_on():
    """Four Newton–Schulz iterations, or another RoPE base, for the whole ladder: the steps on
    AdamW or learned positions never read them, so they train, are described, refused or read
    back, and shown beside the lecture's figure as without the override (the bigram's folder
    was refused as "trained with other settings", and 26 runs were to retrain)."""
    from gpt_jax.ladder import step_config

    for override, reads in (({"train.muon_ns_steps": 4}, "modern.py:muon"),
                            ({"model.rope_base": 500.0}, "modern.py:rope")):
        for spec in ("bigram.py", "lecture.py:head", "shakespeare_char_cpu.py"):
            own = step_config(REPO / "configs" / spec, {})
            assert step_config(REPO / "configs" / spec, override).to_json() == own.to_json()
            assert own.reference_val_loss > 0
        assert step_config(REPO / "configs" / reads, override).to_json() != step_config(
            REPO / "configs" / reads, {}).to_json()


def test_the_bar_leaves_out_a_pause_and_nothing_else(monkeypatch, capsys):
    """tqdm's unpause leaves out the time since the bar was last drawn, at most ten times a
    second: after fast chunks that included their steps, and the bar read 137,380 step/s
    where the run did 1,793. Here 50 steps of 1 ms, a pause of 10 s, 50 more."""
    import tqdm.std

    from gpt_jax.progress import Progress

    now = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: now[0])
    progress = Progress(0, 100, 10, bar=True)
    progress.unpause()
    for step in range(1, 101):
        now[0] += 0.001
        progress.update(step, 1.0, {"lr": 1e-3}, 1.0)
        if step == 50:
            now[0] += 10.0  # an evaluation and a checkpoint
            progress.unpause()
    assert progress.bar.format_dict["elapsed"] == pytest.approx(0.1)
    progress.close()
    capsys.readouterr()


def test_a_step_finished_on_other_data_is_refused_not_read_back(tmp_path):
    """Read back whatever data it trained on, a step's row stood beside its neighbours' on
    an edited file (another vocabulary, other parameters) without a word."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 300)
    config = _tiny(steps=4)
    config.data.path = str(corpus)
    run_step("tiny", config, tmp_path / "tiny")
    assert not run_step("tiny", config, tmp_path / "tiny")["trained"]  # the same data
    corpus.write_text("TO BE OR NOT TO BE, THAT IS THE QUESTION\n" * 300)
    from gpt_jax import ladder

    ladder._fingerprints.clear()  # one ladder reads its data once; this is a later ladder
    with pytest.raises(UserError, match=r"tiny/seed_1337 holds a ladder run trained on other "
                                        r"data \(the sha256 in its data.json differs\)"):
        run_step("tiny", config, tmp_path / "tiny")


def test_a_ladder_refuses_a_later_step_s_folder_before_training_any(tmp_path):
    """The first steps trained (minutes, at full size) before the ladder reached a folder it
    was always going to refuse."""
    from gpt_jax.ladder import _run_ladder

    bigger = _tiny(steps=4)
    bigger.model.n_embd = 32
    run_step("bigger", bigger, tmp_path / "bigger")
    other = _tiny(steps=4)
    other.model.n_embd = 48  # not what trained in tmp_path/bigger
    with pytest.raises(UserError, match=r"bigger/seed_1337 holds a ladder run trained with "
                                        r"other settings \(model.n_embd: 32 → 48\)"):
        _run_ladder([("tiny", _tiny(steps=4), ()), ("bigger", other, ())], tmp_path, "ladder",
                    "The ladder")
    assert not (tmp_path / "tiny").exists()


def test_a_step_killed_in_its_first_save_and_run_again_is_not_called_resumed(tmp_path):
    """orbax's unfinished folder of a save cut short counted as a checkpoint: the row's wall
    time, a whole run's, was marked as a part."""
    unfinished = tmp_path / "tiny" / "seed_1337" / "checkpoints" / "5.orbax-checkpoint-tmp-1"
    unfinished.mkdir(parents=True)
    row = run_step("tiny", _tiny(steps=4), tmp_path / "tiny")
    assert row["trained"] and not row["resumed"]
