"""`python train.py --config=configs/X.py --workdir=DIR [--config.section.field=value ...]`."""

from __future__ import annotations

import sys

from absl import flags

from gpt_jax import cli

flags.DEFINE_string("config", None, "Config file, as path.py or path.py:variant.")
flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and samples of the run.")


def _main(argv: list[str]) -> None:
    args, overrides = cli.split_overrides(argv)
    cli.parse_flags(args)
    FLAGS = flags.FLAGS
    if not FLAGS.config or not FLAGS.workdir:
        raise cli.UserError("usage: python train.py --config=configs/NAME.py --workdir=DIR "
                            "[--config.section.field=value ...]")
    # Only now may jax be touched: jax.distributed must start before any other jax call.
    from gpt_jax.config import apply_overrides, load_config_file
    from gpt_jax.trainer import train_and_evaluate

    config = load_config_file(FLAGS.config)
    apply_overrides(config, overrides)
    train_and_evaluate(config, FLAGS.workdir)


def main() -> None:
    cli.run(lambda: _main(sys.argv))
