"""Reading a config as MMDetection's tools do, without a known warning."""
import warnings

from mmengine.config import Config


def load_config(path: str) -> Config:
    """``Config.fromfile(path)``. To find an ``mmdet::`` base config,
    mmengine imports and then reloads pkg_resources, which warns at every
    load that it is deprecated; this project keeps setuptools<81 on
    purpose (README, *Quick start*), so that warning is dropped here."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'pkg_resources is deprecated',
                                UserWarning)
        return Config.fromfile(path)
