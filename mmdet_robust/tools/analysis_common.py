"""What the sec. 4.1 analysis tools share: a detector from its config and
checkpoint, a test batch with GT in input coordinates, and the output dir."""
import argparse
import copy
import json
import os
import os.path as osp
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import load_checkpoint

import mmdet_robust  # noqa: F401  (registers modules, safe loading)
from mmdet.registry import DATASETS, MODELS
from mmdet_robust.attacks import DensePredictions, dense_predictions
from mmdet_robust.attacks.base import gt_in_input_coords
from mmdet_robust.attacks.dense import check_dense_head, check_prior_boxes
from mmdet_robust.checks import check_budget
from mmdet_robust.config import load_config
from mmdet_robust.evaluation.report import atomic_write
from mmdet_robust.tools.cli import existing_file, positive_int


def analysis_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', type=existing_file)
    parser.add_argument('checkpoint', nargs='?', default=None,
                        type=existing_file, help='omit for random weights')
    parser.add_argument('--work-dir', default='work_dirs/analysis')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--num-images', type=positive_int, default=16)
    parser.add_argument('--eps', type=float, default=8.)
    return parser


def load_detector(config: str, checkpoint: Optional[str]):
    """(eval-mode detector, config)."""
    init_default_scope('mmdet')
    cfg = load_config(config)
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    else:
        model.init_weights()
    return model.eval(), cfg


def require_dense_head(model, tool: str,
                       prior_boxes: Optional[str] = None) -> None:
    """Tools that read the head's dense per-prior scores stop with a
    message, before any image is attacked, on a head they cannot read
    (RTMDet, two-stage detectors), and those whose ``prior_boxes`` rule
    selects priors by their boxes on a head with point priors (YOLOX)."""
    head = getattr(model, 'bbox_head', None)
    try:
        check_dense_head(head)
        if prior_boxes:
            check_prior_boxes(head, prior_boxes)
    except TypeError as err:
        raise SystemExit(f'{tool}: {err}') from None


def test_batch(model, cfg, num_images: int, data_root: Optional[str] = None,
               skip_empty: bool = True) -> dict:
    """Preprocessed test images with GT boxes scaled to the input."""
    loader = copy.deepcopy(cfg.test_dataloader.dataset)
    if data_root:
        loader.data_root = data_root
    dataset = DATASETS.build(loader)
    indices = [i for i in range(len(dataset))
               if not skip_empty or dataset.get_data_info(i)['instances']]
    raw = pseudo_collate([dataset[i] for i in indices[:num_images]])
    with torch.no_grad():
        data = model.data_preprocessor(raw, False)
    return dict(data, data_samples=gt_in_input_coords(data['data_samples']))


def dense_under_attacks(
        model, data: dict, attacks: Dict[str, Optional[object]],
        clean: Optional[DensePredictions] = None
) -> Iterator[Tuple[str, object, DensePredictions]]:
    """``(name, attack, dense predictions)`` on the batch as each attack
    leaves it (``None``: the clean batch, whose predictions are ``clean``
    where the caller has them already)."""
    for name, attack in attacks.items():
        if attack is None and clean is not None:
            yield name, attack, clean
            continue
        inputs = data['inputs'] if attack is None else attack(
            model, data)['inputs']
        with torch.no_grad():
            yield name, attack, dense_predictions(model, inputs)


def write_json(work_dir: str, name: str, payload: dict) -> str:
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, f'{name}.json')
    atomic_write(path, json.dumps(payload, indent=2))
    return path


def parse(parser: argparse.ArgumentParser,
          argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The tool's arguments, checked before any model is built."""
    args = parser.parse_args(argv)
    try:
        check_budget('--eps', args.eps)  # the attacks' own bound
    except ValueError as err:
        parser.error(str(err))
    os.makedirs(args.work_dir, exist_ok=True)
    return args
