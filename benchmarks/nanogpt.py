"""How the benchmarks run karpathy/nanoGPT's own train.py, from a checkout outside this repo
(none of its code is ours): on the CPU, eager, with our configs' model and batch settings."""

TRAIN = ["train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False"]

# Per config of ours: the flags that make nanoGPT train the same model on the same batches.
MODEL_ARGS = {
    "shakespeare_char_cpu.py": ["--block_size=64", "--batch_size=12", "--n_layer=4",
                                "--n_head=4", "--n_embd=128", "--dropout=0.0"],
    "shakespeare_char.py": [],  # its config file's own settings
}
