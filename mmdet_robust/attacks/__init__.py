from .base import DetectorAttack, attack_mode, sign_pgd, unwrap
from .pixel_space import PixelSpace, project
from .task_domain import TaskDomainAttacker
from .task_losses import DEFAULT_TASK_KEYS, TaskKeyError, TaskLosses

__all__ = [
    'DEFAULT_TASK_KEYS', 'DetectorAttack', 'PixelSpace', 'TaskDomainAttacker',
    'TaskKeyError', 'TaskLosses', 'attack_mode', 'project', 'sign_pgd',
    'unwrap'
]
