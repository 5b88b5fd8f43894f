"""`python train.py --config=configs/X.py --workdir=DIR [--config.section.field=value ...]`."""

from __future__ import annotations

import sys

from absl import flags

from gpt_jax import cli

FLAGS = flags.FlagValues()  # this command's own: importing it defines no global flag
USAGE = ("usage: python train.py --config=configs/NAME.py[:variant] --workdir=DIR "
         "[--config.section.field=value ...]")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and samples of the run.",
                    flag_values=FLAGS)
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for a multi-process "
                    "run (with --num_processes and --process_id).", flag_values=FLAGS)
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.", flag_values=FLAGS)
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes-1.",
                     flag_values=FLAGS)
flags.DEFINE_bool("distributed", False, "Auto-detect the processes of a Cloud TPU VM, SLURM or "
                  "Open MPI job.", flag_values=FLAGS)
flags.DEFINE_float("distributed_timeout", 300, "Seconds to wait for the other processes to "
                   "join, and for a sign of life from each of them while training.",
                   flag_values=FLAGS)


# what a config's description speaks of: its model and its data
DESCRIBED = ("model.", "data.path", "data.val_path", "data.task", "data.max_source_len",
             "data.max_target_len")


def described(description: str, overrides: dict) -> str:
    """The config file's description, which speaks of its own model and data ("4 layers, 4
    heads, 128 wide, block 64"; "dates in many spellings → ISO dates"), with the fields of
    those that the command line set named beside it: config.json keeps it, and index.html and
    loss.png would describe a model or a task the run is not."""
    model = [f"{name}={value}" for name, value in overrides.items()
             if name.startswith(DESCRIBED)]
    if not (description and model) or "description" in overrides:  # the user's own words
        return description
    return f"{description} (the config file's description; this run sets {', '.join(model)})"


def _main(argv: list[str]) -> None:
    # config_flags reads sys.argv as it defines the flag: here, where a bad one is one line.
    cli.define_config_file(FLAGS, "Config file, as path.py or path.py:variant; any field can "
                                  "be overridden as --config.section.field=value.")
    cli.parse_flags(argv, USAGE, FLAGS)
    F = FLAGS
    if F.config is None and any(arg.startswith("--config=") for arg in argv[1:]):
        raise cli.UserError(f"get_config() of {cli.config_spec()} returned None, not a config")
    cli.require_flags(FLAGS, ("config", "workdir"), USAGE)
    from gpt_jax.config import anchor_data_paths, validate

    config = cli.loaded_config(FLAGS)
    config.description = described(config.description, FLAGS["config"].override_values)
    anchor_data_paths(config)
    validate(config)  # a typo fails now: before importing jax, and before waiting for peers
    if F.coordinator_address or F.distributed:
        from gpt_jax import runtime_log

        runtime_log.keep_runtime_failures_off_stderr()  # a lost peer is the CLI's one line
    # Importing jax is fine; calling it is not until jax.distributed has started.
    from gpt_jax import compilation_cache, distributed
    from gpt_jax.trainer import train_and_evaluate

    distributed.initialize(F.coordinator_address, F.num_processes, F.process_id,
                           F.distributed, F.distributed_timeout)
    compilation_cache.enable()
    train_and_evaluate(config, F.workdir)


def main() -> None:
    cli.run(lambda: _main(sys.argv))
