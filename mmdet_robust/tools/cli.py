"""argparse types shared by the command-line tools and the benchmarks:
a bad value is a usage error naming the flag, before any work."""
import argparse
import os.path as osp
from typing import Callable


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(
                f'expected an integer >= {low}, got {text!r}')
        return value
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def existing_file(text: str) -> str:
    """An argparse ``type``: the path of an existing file."""
    if not osp.isfile(text):
        raise argparse.ArgumentTypeError(f'{text!r} is not a file')
    return text
