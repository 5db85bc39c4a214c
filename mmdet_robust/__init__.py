"""mmdet_robust: adversarially robust one-stage detectors for MMDetection.

Importing the package registers its modules into MMDetection's registries
(``custom_imports=dict(imports=['mmdet_robust'])`` in a config) and makes
mmengine load checkpoints with ``weights_only=True`` (:mod:`.checkpoint`).
"""
from . import attacks  # noqa: F401
from . import checkpoint  # noqa: F401
from . import engine  # noqa: F401
from . import evaluation  # noqa: F401
from . import models  # noqa: F401
from .version import __version__

__all__ = ['__version__']
