from setuptools import find_packages, setup


def version():
    scope = {}
    with open('mmdet_robust/version.py') as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmdet_robust',
    version=version(),
    description='Adversarially robust one-stage object detection for '
    'MMDetection 3.x (Zhang & Wang, ICCV 2019)',
    packages=find_packages(include=['mmdet_robust', 'mmdet_robust.*']),
    python_requires='>=3.8',
    # torch and mmcv are installed beforehand (see the Makefile): mmcv 2.1.0
    # is built from source with its ops against the torch already present,
    # and a GPU user keeps their own CUDA torch.
    install_requires=[
        'mmengine==0.10.7', 'mmcv==2.1.0', 'mmdet==3.3.0', 'pycocotools',
        'numpy', 'pillow', 'matplotlib'
    ],
    extras_require={'tests': ['pytest'], 'mim': ['openmim==0.3.9']},
)
