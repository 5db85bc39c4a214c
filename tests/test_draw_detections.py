"""The detections figure tool (the paper's Fig. 1/7/8 for any model)."""
import re
import warnings

import pytest
import torch
from matplotlib.image import imread
from mmengine.structures import InstanceData

from conftest import ROBUST_CFG
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer
from mmdet_robust.tools.draw_detections import (_drawn_detections,
                                                boxes_on_input,
                                                displayed_pixels, main)

IMAGENET = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def test_one_row_per_checkpoint_one_column_per_attack(
        shapes_root, trained_checkpoint, tmp_path, capsys):
    path, _ = trained_checkpoint
    out = tmp_path / 'figure.png'
    main([ROBUST_CFG, path, path, '--labels', 'A', 'B', '--attacks',
          'clean', 'cls_pgd', 'dag', '--data-root', shapes_root,
          '--image-index', '3', '--out', str(out)])
    assert capsys.readouterr().out.strip() == str(out)
    height, width = imread(str(out)).shape[:2]
    # figsize (3 per column, 3.2 per row) inches at 110 dpi
    assert (height, width) == (704, 990)


@pytest.mark.parametrize('preprocessor', [
    dict(IMAGENET, bgr_to_rgb=True),                     # RetinaNet, FCOS
    dict(mean=[123.675, 116.28, 103.53], std=[1, 1, 1],  # SSD
         bgr_to_rgb=True),
    dict(mean=[0, 0, 0], std=[255.] * 3, bgr_to_rgb=True),  # YOLOv3
    dict(pad_size_divisor=32),  # YOLOX: raw BGR pixels, padded
])
def test_the_figure_shows_the_image_in_rgb(preprocessor):
    """Whatever the preprocessor's mean, std and channel order, the drawn
    network input is the loaded (BGR) image in RGB, to the pixel."""
    bgr = torch.randint(0, 256, (3, 8, 10), dtype=torch.uint8,
                        generator=torch.Generator().manual_seed(0))
    dp = DetDataPreprocessor(**preprocessor)
    data = dp(dict(inputs=[bgr.clone()], data_samples=[
        DetDataSample(metainfo=dict(img_shape=(8, 10)))]), False)
    shown = displayed_pixels(dp, data['inputs'], data['data_samples'])
    assert shown.dtype.name == 'uint8' and shown.shape[-1] == 3
    assert (shown[0, :8, :10] == bgr.flip(0).permute(1, 2, 0).numpy()).all()


def test_boxes_are_scaled_to_the_input_and_clipped_to_it():
    boxes = torch.tensor([[10., 20., 30., 40.], [-5., 50., 120., 90.]])
    drawn = boxes_on_input(boxes, (0.5, 2.), (96, 48))  # (w, h), (h, w)
    assert drawn.tolist() == [[5., 40., 15., 80.], [0., 96., 48., 96.]]
    assert boxes[1, 0] == -5.  # the prediction itself is not changed


class _EdgeBoxDetector(torch.nn.Module):
    """Predicts one box, ``box`` in input pixels, for every image."""

    def __init__(self, box):
        super().__init__()
        self.data_preprocessor = DetDataPreprocessor()
        self.box = box

    def test_step(self, data):
        for sample in data['data_samples']:
            sample.pred_instances = InstanceData(
                bboxes=torch.tensor([self.box]), scores=torch.tensor([0.9]),
                labels=torch.tensor([0]))
        return data['data_samples']


def test_a_box_at_the_input_edge_is_drawn_without_warnings():
    """A box clipped to the input's right and bottom edges (x2 = width,
    y2 = height) is drawn, without mmengine's out-of-bounds warnings."""
    model = _EdgeBoxDetector([5., 6., 50., 40.])
    data = model.data_preprocessor(dict(
        inputs=[torch.zeros(3, 40, 50, dtype=torch.uint8)],
        data_samples=[DetDataSample(metainfo=dict(
            img_shape=(40, 50), scale_factor=(1., 1.)))]), False)
    visualizer = DetLocalVisualizer(name='edge_box_test')
    visualizer.dataset_meta = dict(classes=('square', ),
                                   palette=[(255, 0, 0)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        drawn = _drawn_detections(visualizer, model, data['inputs'],
                                  data['data_samples'], 0.3)
    assert not [w for w in caught if 'out of bounds' in str(w.message)]
    assert drawn.shape == (40, 50, 3)
    assert (drawn[6, 10:40] != 0).any()  # the box's top edge is drawn


@pytest.mark.parametrize('argv, match', [
    (['--attacks', 'clean', 'fgsm'],
     r"attacks \['fgsm'\] are not in test_cfg.attacks .*cls_pgd"),
    (['--image-index', '16'], 'image index 16 is outside the test set of '
     '16 images'),
    (['--labels', 'A', 'B'], 'one label per checkpoint'),
    (['--image-index', '-1'], "expected an integer >= 0, got '-1'"),
])
def test_bad_settings_stop_before_any_model(shapes_root, trained_checkpoint,
                                            tmp_path, capsys, argv, match):
    path, _ = trained_checkpoint
    out = tmp_path / 'figure.png'
    with pytest.raises(SystemExit) as exit_:
        main([ROBUST_CFG, path, '--data-root', shapes_root, '--out',
              str(out), *argv])
    assert exit_.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not out.exists()
