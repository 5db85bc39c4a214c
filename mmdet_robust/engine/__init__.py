from .hooks import (AdvTrainingHook, CheckpointFitHook, RNGStateHook,
                    TrainEnvironmentHook)
from .loops import (AdvEpochBasedTrainLoop, AdvIterBasedTrainLoop,
                    build_adv_training_loop)
from .optim_wrapper import FiniteLossOptimWrapper
from .robust_test_loop import RobustTestLoop, expand_sweep
from .robust_val_loop import RobustValLoop

__all__ = [
    'AdvEpochBasedTrainLoop', 'AdvIterBasedTrainLoop', 'AdvTrainingHook',
    'CheckpointFitHook', 'FiniteLossOptimWrapper', 'RNGStateHook',
    'RobustTestLoop', 'RobustValLoop', 'TrainEnvironmentHook',
    'build_adv_training_loop', 'expand_sweep'
]
