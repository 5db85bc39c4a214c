"""Predicted boxes on one test image, clean and under attack, per model.

The paper's Figures 1, 7 and 8: rows are models (e.g. STD and MTD
checkpoints of one config), columns the clean image and each attack of the
robust-eval config, boxes drawn by MMDetection's ``DetLocalVisualizer`` on
the network input the attack produced::

    python -m mmdet_robust.tools.draw_detections \\
        configs/robust_eval/ssd300_vgg16_voc.py std.pth mtd.pth \\
        --labels STD MTD --attacks clean cls_pgd dag rap --image-index 7
"""
import argparse
import copy
import warnings
from typing import Dict, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch import Tensor

import mmdet_robust  # noqa: F401  (registers modules, safe loading)
from mmdet.registry import DATASETS, MODELS
from mmdet.visualization import DetLocalVisualizer
from mmdet_robust.attacks import PixelSpace
from mmdet_robust.attacks.base import gt_in_input_coords
from mmdet_robust.attacks.pixel_space import feeds_rgb
from mmdet_robust.checkpoint import safe_torch_load
from mmdet_robust.config import load_config
from mmdet_robust.engine.attacked_evaluation import (build_attack,
                                                     predict_preprocessed)
from mmdet_robust.engine.robust_test_loop import configured_attacks
from mmdet_robust.tools.cli import existing_file, nonnegative_int

DEFAULT_ATTACKS = ('clean', 'cls_pgd', 'dag', 'rap')


class FigureInputs(NamedTuple):
    """What every row of the figure shares."""
    cfg: Config
    metainfo: dict
    raw: dict  # the test image as the dataloader gives it
    columns: Sequence[str]  # 'clean' and attack names
    attacks: Dict[str, dict]  # the attacks' configs (they build)


def figure_inputs(eval_config: str, attacks: Sequence[str] = DEFAULT_ATTACKS,
                  image_index: int = 0, data_root: Optional[str] = None
                  ) -> FigureInputs:
    """Read ``eval_config``, its test image ``image_index`` and build the
    ``attacks`` (``clean`` or names of its ``test_cfg.attacks``): every
    setting is checked here, before any model is built (ValueError or
    TypeError naming it)."""
    init_default_scope('mmdet')
    cfg = load_config(eval_config)
    if data_root:
        cfg.test_dataloader.dataset.data_root = data_root
    cfgs = configured_attacks(cfg, [a for a in attacks if a != 'clean'],
                              eval_config)
    for name, attack in cfgs.items():  # their arguments are checked
        build_attack(name, attack)
    dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
    if not 0 <= image_index < len(dataset):
        raise ValueError(f'image index {image_index} is outside the test '
                         f'set of {len(dataset)} images')
    return FigureInputs(cfg, dataset.metainfo,
                        pseudo_collate([dataset[image_index]]),
                        tuple(attacks), cfgs)


def displayed_pixels(data_preprocessor, inputs, data_samples
                     ) -> np.ndarray:
    """The network input ``(N, C, H, W)`` (clean or attacked) as the images
    it shows: ``(N, H, W, 3)`` uint8 RGB pixels, whatever the
    preprocessor's mean, std and channel order."""
    pixels = PixelSpace(data_preprocessor, inputs,
                        data_samples).clean_pixels()
    if not feeds_rgb(data_preprocessor):
        pixels = pixels.flip(1)
    return pixels.round().permute(0, 2, 3, 1).byte().cpu().numpy()


def boxes_on_input(boxes, scale_factor: Sequence[float],
                   input_shape: Sequence[int]):
    """Predicted boxes ``(K, 4)`` in original-image pixels -> the network
    input's pixels (``scale_factor`` (w, h)), clipped to ``input_shape``
    (h, w): boxes of heads that do not clip (YOLOX) would otherwise
    stretch the drawn canvas."""
    sx, sy = scale_factor
    boxes = boxes * boxes.new_tensor([sx, sy, sx, sy])
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, input_shape[1])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, input_shape[0])
    return boxes


def _drawn_detections(visualizer, model, inputs: Tensor, data_samples,
                      score_thr: float) -> np.ndarray:
    """``(H, W, 3)`` RGB: the network input ``inputs`` (normalised, one
    image) as the model sees it, with its detections scoring at least
    ``score_thr`` drawn in the input's coordinates."""
    result = predict_preprocessed(model, inputs, data_samples)[0].cpu()
    shown = displayed_pixels(model.data_preprocessor, inputs,
                             data_samples)[0]
    result.pred_instances.bboxes = boxes_on_input(
        result.pred_instances.bboxes, result.scale_factor, shown.shape[:2])
    with warnings.catch_warnings():
        # a box clipped to the input's right or bottom edge ends at its
        # width or height, which mmengine's bounds check counts as outside
        warnings.filterwarnings(
            'ignore', 'Warning: The (bbox|polygon) is out of bounds',
            UserWarning)
        visualizer.add_datasample(
            'img', np.ascontiguousarray(shown), result, draw_gt=False,
            pred_score_thr=score_thr, show=False)
    return visualizer.get_image()


def draw_detections(inputs: FigureInputs, checkpoints: Dict[str, str],
                    out_path: str, score_thr: float = 0.3,
                    device: str = 'cpu') -> None:
    """Rows ``checkpoints`` (``{row label: path}``), columns
    ``inputs.columns``; boxes scoring at least ``score_thr``, written to
    ``out_path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = inputs.columns
    visualizer = DetLocalVisualizer(name='detections_figure')
    visualizer.dataset_meta = inputs.metainfo
    fig, axes = plt.subplots(len(checkpoints), len(columns),
                             figsize=(3 * len(columns),
                                      3.2 * len(checkpoints)), squeeze=False)
    for row, (label, path) in enumerate(checkpoints.items()):
        model = MODELS.build(copy.deepcopy(inputs.cfg.model))
        model.load_state_dict(safe_torch_load(path)['state_dict'])
        model.to(device).eval()
        attacks = {name: build_attack(name, attack, model)
                   for name, attack in inputs.attacks.items()}
        data = model.data_preprocessor(copy.deepcopy(inputs.raw), False)
        to_attack = dict(data, data_samples=gt_in_input_coords(
            data['data_samples']))
        for col, name in enumerate(columns):
            adv = data['inputs'] if name == 'clean' else \
                attacks[name](model, to_attack)['inputs']
            ax = axes[row][col]
            ax.imshow(_drawn_detections(visualizer, model, adv,
                                        data['data_samples'], score_thr))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name.replace('_', '-'))
            if col == 0:
                ax.set_ylabel(label, fontsize=13)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def detections_figure(eval_config: str, checkpoints: Dict[str, str],
                      out_path: str, attacks: Sequence[str] = DEFAULT_ATTACKS,
                      image_index: int = 0, data_root: Optional[str] = None,
                      **kwargs) -> None:
    """:func:`figure_inputs` then :func:`draw_detections`."""
    draw_detections(figure_inputs(eval_config, attacks, image_index,
                                  data_root), checkpoints, out_path, **kwargs)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('eval_config', type=existing_file,
                        help='robust-eval config (model, test set, attacks)')
    parser.add_argument('checkpoints', nargs='+', type=existing_file)
    parser.add_argument('--labels', nargs='+',
                        help='one row label per checkpoint')
    parser.add_argument('--attacks', nargs='+', default=DEFAULT_ATTACKS,
                        help='columns: clean and test_cfg.attacks names')
    parser.add_argument('--image-index', type=nonnegative_int, default=0)
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', default='detections.png')
    args = parser.parse_args(argv)
    labels = args.labels or [f'model {i}'
                             for i in range(len(args.checkpoints))]
    if len(labels) != len(args.checkpoints):
        parser.error('give one label per checkpoint')
    if len(set(labels)) != len(labels):
        parser.error(f'labels must differ, got {labels}')
    try:  # settings that are known once the config is read
        inputs = figure_inputs(args.eval_config, args.attacks,
                               args.image_index, args.data_root)
    except (TypeError, ValueError) as err:
        parser.error(str(err))
    draw_detections(inputs, dict(zip(labels, args.checkpoints)), args.out,
                    args.score_thr, args.device)
    print(args.out)


if __name__ == '__main__':
    main()
