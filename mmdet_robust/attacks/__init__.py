from .dag import DAGAttack
from .base import DetectorAttack, attack_mode, sign_pgd, unwrap
from .dense import DensePredictions, dense_predictions
from .pgd import PGDAttack
from .pixel_space import PixelSpace, project
from .rap import RAPAttack
from .task_domain import TaskDomainAttacker
from .transfer import TransferAttack
from .task_losses import DEFAULT_TASK_KEYS, TaskKeyError, TaskLosses

__all__ = [
    'DAGAttack', 'DensePredictions', 'PGDAttack', 'RAPAttack',
    'TransferAttack',
    'dense_predictions', 'DEFAULT_TASK_KEYS', 'DetectorAttack', 'PixelSpace', 'TaskDomainAttacker',
    'TaskKeyError', 'TaskLosses', 'attack_mode', 'project', 'sign_pgd',
    'unwrap'
]
