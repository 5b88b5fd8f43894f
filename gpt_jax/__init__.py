"""gpt-jax: a character-level language model grown from a bigram table into a GPT."""

__version__ = "0.1.0"
