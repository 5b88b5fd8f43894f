"""A config file for subprocess tests: the tiny GPT of conftest.tiny_config."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import tiny_config  # noqa: E402


def get_config():
    config = tiny_config()
    config.lock()
    return config
