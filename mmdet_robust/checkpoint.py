"""Safe checkpoint loading for mmengine checkpoints on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load(filename, map_location)``; torch >= 2.6
defaults to ``weights_only=True``, which refuses the few non-tensor objects an
mmengine checkpoint holds (the message hub's ``HistoryBuffer`` and numpy
arrays and scalars). Turning the safety off would let a checkpoint run
arbitrary code on load. Instead, mmengine's local and http checkpoint loaders
are replaced (through mmengine's own ``CheckpointLoader.register_scheme``) by
loaders that keep ``weights_only=True`` and allowlist exactly those types.
``load_from``, ``resume`` and ``mim test --checkpoint`` all go through them.
"""
import os.path as osp
import pickle
import re
from contextlib import contextmanager
from typing import List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint asks to unpickle an object outside the allowlist."""


def _history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to what a pickled ``HistoryBuffer`` needs.

    The message hub pickles its buffers' statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; a general ``getattr`` would let a
    pickle reach e.g. ``os.system``.
    """
    allowed = {'min', 'max', 'current', 'mean',
               *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        'HistoryBuffer statistics are allowed')


def checkpoint_allowlist() -> List[object]:
    """Globals an mmengine checkpoint may contain besides tensors."""
    core = getattr(np, '_core', None) or np.core
    dtypes = [type(np.dtype(t)) for t in (
        np.float64, np.float32, np.float16, np.int64, np.int32, np.int16,
        np.int8, np.uint8, np.bool_)]
    return [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        *dtypes,
    ]


@contextmanager
def refusing_unsafe(source: str):
    """The allowlist in force; a refused unpickling re-raised as
    :class:`UnsafeCheckpointError` that names ``source`` and the object."""
    with torch.serialization.safe_globals(checkpoint_allowlist()):
        try:
            yield
        except pickle.UnpicklingError as err:
            found = re.search(r'GLOBAL ([\w.]+)', str(err))
            what = found.group(1) if found else 'an unsupported object'
            raise UnsafeCheckpointError(
                f'Refusing to load checkpoint {source!r}: it would unpickle '
                f'{what}, which is neither a tensor nor one of the mmengine/'
                'numpy types mmengine checkpoints contain. Unpickling it '
                'could run arbitrary code. Only load checkpoints you trust; '
                'to use the weights of a trusted file, re-save its '
                '`state_dict` with torch.save.') from None


def safe_torch_load(file, map_location=None):
    """``torch.load(file, weights_only=True)`` with the mmengine allowlist.

    Raises:
        UnsafeCheckpointError: the file would unpickle something else, e.g.
            a function call planted in the pickle.
    """
    with refusing_unsafe(file):
        return torch.load(file, map_location=map_location, weights_only=True)


def load_from_local(filename, map_location):
    """mmengine's local checkpoint loader, with ``weights_only=True``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location)


def load_from_http(filename, map_location=None, model_dir=None, **kwargs):
    """mmengine's http(s) checkpoint loader (a download cached by
    ``torch.hub``), with ``weights_only=True``."""
    with refusing_unsafe(filename):
        return torch.hub.load_state_dict_from_url(
            filename, model_dir=model_dir, map_location=map_location,
            weights_only=True, **kwargs)


CheckpointLoader.register_scheme('', load_from_local, force=True)
CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http,
                                 force=True)


class CheckpointMismatchError(RuntimeError):
    """A checkpoint's weights do not fit the model being evaluated/resumed."""


def check_state_dict_fits(model: torch.nn.Module, state_dict: dict,
                          source: str = 'checkpoint', limit: int = 8) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` has every
    parameter and buffer of ``model`` with the same shapes and nothing else.

    mmengine loads with ``strict=False`` and only logs a warning, so a
    checkpoint of another architecture would otherwise be evaluated with
    partly random weights. The message names the missing, unexpected and
    mis-shaped keys (at most ``limit`` of each).
    """
    own = model.state_dict()
    theirs = {re.sub(r'^module\.', '', k): v for k, v in state_dict.items()}
    missing = [k for k in own if k not in theirs]
    unexpected = [k for k in theirs if k not in own]
    shapes = [f'{k}: checkpoint {tuple(theirs[k].shape)} vs model '
              f'{tuple(v.shape)}' for k, v in own.items()
              if k in theirs and hasattr(theirs[k], 'shape')
              and tuple(theirs[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return

    def listed(title, keys):
        more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
        return f'\n  {title} ({len(keys)}): {", ".join(keys[:limit])}{more}'

    raise CheckpointMismatchError(
        f'{source} does not fit {type(model).__name__}: is it from another '
        'architecture or config?' +
        (listed('missing keys', missing) if missing else '') +
        (listed('unexpected keys', unexpected) if unexpected else '') +
        (listed('shape mismatches', shapes) if shapes else ''))
