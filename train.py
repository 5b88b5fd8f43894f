"""Train a model of the ladder: python train.py --config=configs/bigram.py --workdir=/tmp/bigram"""

from gpt_jax.train_cli import main

if __name__ == "__main__":
    main()
