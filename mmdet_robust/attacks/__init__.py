from .base import DetectorAttack, attack_mode, sign_pgd, unwrap
from .dag import DAGAttack
from .dense import DensePredictions, dense_predictions
from .pgd import PGDAttack
from .pixel_space import PixelSpace, project
from .rap import RAPAttack
from .task_domain import TaskDomainAttacker
from .task_losses import DEFAULT_TASK_KEYS, TaskKeyError, TaskLosses
from .transfer import TransferAttack

__all__ = [
    'DAGAttack', 'DEFAULT_TASK_KEYS', 'DensePredictions', 'DetectorAttack',
    'PGDAttack', 'PixelSpace', 'RAPAttack', 'TaskDomainAttacker',
    'TaskKeyError', 'TaskLosses', 'TransferAttack', 'attack_mode',
    'dense_predictions', 'project', 'sign_pgd', 'unwrap'
]
