"""Train a model of the ladder: python train.py --config=configs/bigram.py --workdir=/tmp/bigram"""

if __name__ == "__main__":  # first, before the imports below, which take seconds (jax)
    from gpt_jax import first_step

    first_step.take()

from gpt_jax.train_cli import main  # noqa: E402  (after the signals are taken care of)

if __name__ == "__main__":
    main()
