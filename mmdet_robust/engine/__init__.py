from .hooks import AdvTrainingHook, CheckpointFitHook, RNGStateHook
from .optim_wrapper import FiniteLossOptimWrapper
from .loops import (AdvEpochBasedTrainLoop, AdvIterBasedTrainLoop,
                    build_adv_training_loop)
from .robust_test_loop import RobustTestLoop, expand_sweep

__all__ = [
    'FiniteLossOptimWrapper', 'AdvEpochBasedTrainLoop', 'AdvIterBasedTrainLoop', 'AdvTrainingHook',
    'CheckpointFitHook', 'RNGStateHook',
    'RobustTestLoop', 'build_adv_training_loop', 'expand_sweep'
]
