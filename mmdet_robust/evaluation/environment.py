"""Where a robustness number was computed: the software and the machine.

Attacked mAP moves with floating-point detail (sign steps amplify tiny
gradient differences), so the same checkpoint and config can give other
numbers on another CPU or with other package versions. Each report entry
records this next to its number, and the report says where the checkpoint
was trained when the checkpoint records it (``TrainEnvironmentHook``).
"""
import importlib
import importlib.metadata
import platform
from typing import Dict, List, Optional, Union

import torch

# import name -> distribution name (for packages without ``__version__``)
PACKAGES = {
    'torch': 'torch',
    'mmengine': 'mmengine',
    'mmcv': 'mmcv',
    'mmdet': 'mmdet',
    'mmdet_robust': 'mmdet_robust',
    'numpy': 'numpy',
    'cv2': 'opencv-python',
    'PIL': 'pillow',
    'pycocotools': 'pycocotools',
}


def package_version(module: str) -> Optional[str]:
    """``module.__version__``, else its distribution's version, else None
    (not installed)."""
    try:
        version = getattr(importlib.import_module(module), '__version__',
                          None)
    except ImportError:
        return None
    if version is None:
        try:
            version = importlib.metadata.version(PACKAGES.get(module, module))
        except importlib.metadata.PackageNotFoundError:
            return None
    return str(version)


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what
    ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: Union[str, torch.device] = 'cpu') -> Dict:
    """The environment of this process for a computation on ``device``:
    ``python``, ``system``, ``cpu`` (model name), ``cpu_capability`` (the
    vector instructions torch's CPU kernels use: ``AVX2``, ``AVX512``...),
    ``torch_threads``, ``device`` (with the GPU's name) and ``packages``
    ``{import name: version}``."""
    device = torch.device(device)
    where = str(device)
    if device.type == 'cuda':
        where += f' ({torch.cuda.get_device_name(device)})'
    return dict(python=platform.python_version(),
                system=f'{platform.system()} {platform.machine()}',
                cpu=cpu_model(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                torch_threads=torch.get_num_threads(),
                device=where,
                packages={name: package_version(name) for name in PACKAGES})


def describe(env: Dict) -> str:
    """One line: the device, the CPU and the package versions."""
    packages = ', '.join(f'{name} {version}' for name, version in
                         env.get('packages', {}).items() if version)
    return (f'{env.get("device")} ({env.get("cpu")}, '
            f'{env.get("cpu_capability")}, '
            f'{env.get("torch_threads")} torch threads), Python '
            f'{env.get("python")}; {packages}')


def by_environment(environments: Dict[str, Optional[Dict]]
                   ) -> Dict[str, List[str]]:
    """``{describe(env): [names computed there]}`` of ``{name: env}``, in
    first-seen order; names without a recorded environment are left out."""
    grouped: Dict[str, List[str]] = {}
    for name, env in environments.items():
        if env:
            grouped.setdefault(describe(env), []).append(name)
    return grouped


def describe_training(record: Optional[Dict]) -> List[str]:
    """Where ``record``'s weights were trained, as ``TrainEnvironmentHook``
    records it. ``record`` is any dict with its two keys: a checkpoint's
    ``meta``, a report's ``model`` entry or a nested ``train_init``. One
    line per stretch of ``train_environments``, one saying so when nothing
    was recorded; first, where the run started from another checkpoint's
    weights (``train_init``), that checkpoint's lines, indented."""
    record = record or {}
    lines = []
    init = record.get('train_init')
    if init:
        lines.append(f'Initialised from the weights of '
                     f'{init.get("checkpoint")}:')
        lines += ['  ' + line for line in describe_training(init)]
    stretches = record.get('train_environments')
    if not stretches:
        return lines + [
            'Training environment: not recorded in the checkpoint.']
    for stretch in stretches:
        begin, end = stretch['iters']
        iters = f'iterations {begin}-{end}'
        if stretch.get('environment') is None:
            lines.append(f'Trained ({iters}) where the checkpoint does not '
                         'record.')
            continue
        n = stretch.get('world_size') or 1
        lines.append(f'Trained ({iters}, {n} process{"es" * (n > 1)}) on '
                     f'{describe(stretch["environment"])}.')
    return lines
