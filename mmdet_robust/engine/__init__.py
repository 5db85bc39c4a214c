from .hooks import AdvTrainingHook
from .loops import (AdvEpochBasedTrainLoop, AdvIterBasedTrainLoop,
                    build_adv_training_loop)

__all__ = [
    'AdvEpochBasedTrainLoop', 'AdvIterBasedTrainLoop', 'AdvTrainingHook',
    'build_adv_training_loop'
]
