"""`python train.py --config=configs/X.py --workdir=DIR [--config.section.field=value ...]`."""

from __future__ import annotations

import sys

from absl import flags

from gpt_jax import cli

flags.DEFINE_string("config", None, "Config file, as path.py or path.py:variant.")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and samples of the run.")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for a multi-process "
                    "run (with --num_processes and --process_id).")
flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes-1.")
flags.DEFINE_bool("distributed", False, "Auto-detect the processes of a Cloud TPU VM, SLURM or "
                  "Open MPI job.")
flags.DEFINE_float("distributed_timeout", 300, "Seconds to wait for the other processes.")


def _main(argv: list[str]) -> None:
    args, overrides = cli.split_overrides(argv)
    cli.parse_flags(args)
    FLAGS = flags.FLAGS
    if not FLAGS.config or not FLAGS.workdir:
        raise cli.UserError("usage: python train.py --config=configs/NAME.py --workdir=DIR "
                            "[--config.section.field=value ...]")
    # Importing jax is fine; calling it is not until jax.distributed has started.
    from gpt_jax import compilation_cache, distributed
    from gpt_jax.config import apply_overrides, load_config_file, validate
    from gpt_jax.trainer import train_and_evaluate

    config = load_config_file(FLAGS.config)
    apply_overrides(config, overrides)
    validate(config)  # a typo fails now, not after waiting for the other processes
    compilation_cache.enable()
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id,
                           FLAGS.distributed, FLAGS.distributed_timeout)
    train_and_evaluate(config, FLAGS.workdir)


def main() -> None:
    cli.run(lambda: _main(sys.argv))
