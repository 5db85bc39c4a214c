import filecmp
import json
import os
import os.path as osp
import re
from collections import Counter
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from conftest import voc_dataset
from mmdet_robust.datasets.make_shapes import (SHAPES_CLASSES, main,
                                               make_image, make_shapes,
                                               object_mask, stamp_path)


def _objects(voc, name):
    root = ET.parse(osp.join(voc, 'Annotations', f'{name}.xml')).getroot()
    size = int(root.find('size/width').text), int(
        root.find('size/height').text)
    objs = [(o.find('name').text,
             [int(o.find(f'bndbox/{k}').text)
              for k in ('xmin', 'ymin', 'xmax', 'ymax')])
            for o in root.findall('object')]
    return size, objs


def test_deterministic_for_a_seed(tmp_path):
    a = make_shapes(str(tmp_path / 'a'), num_train=6, num_test=2, seed=7)
    b = make_shapes(str(tmp_path / 'b'), num_train=6, num_test=2, seed=7)
    c = make_shapes(str(tmp_path / 'c'), num_train=6, num_test=2, seed=8)
    # the stamp, which the demo's stages compare against, records the seed
    assert json.load(open(stamp_path(str(tmp_path / 'c'))))['seed'] == 8
    va, vb, vc = (osp.join(d, 'VOC2007') for d in (a, b, c))
    for sub in ('JPEGImages', 'Annotations'):
        names = sorted(os.listdir(osp.join(va, sub)))
        assert len(names) == 8
        _, mismatch, errors = filecmp.cmpfiles(
            osp.join(va, sub), osp.join(vb, sub), names, shallow=False)
        assert not mismatch and not errors
    assert any(_objects(va, f'{i:06d}') != _objects(vc, f'{i:06d}')
               for i in range(8))


def test_layout_boxes_and_class_balance(tmp_path):
    devkit = make_shapes(str(tmp_path), num_train=150, num_test=50, seed=0)
    voc = osp.join(devkit, 'VOC2007')
    splits = {s: open(osp.join(voc, 'ImageSets/Main', f'{s}.txt')).read()
              .split() for s in ('trainval', 'test')}
    assert len(splits['trainval']) == 150 and len(splits['test']) == 50
    assert not set(splits['trainval']) & set(splits['test'])
    counts, sizes = Counter(), []
    for name in splits['trainval'] + splits['test']:
        (w, h), objs = _objects(voc, name)
        assert 1 <= len(objs) <= 4
        for cls, (x1, y1, x2, y2) in objs:
            assert 1 <= x1 < x2 <= w and 1 <= y1 < y2 <= h
            counts[cls] += 1
            sizes.append(x2 - x1)
    assert set(counts) == set(SHAPES_CLASSES)
    mean = np.mean(list(counts.values()))
    assert all(abs(c - mean) < 0.25 * mean for c in counts.values()), counts
    assert min(sizes) < 30 < 45 < max(sizes)  # varied object sizes


def test_voc_dataset_reads_the_same_boxes(tmp_path):
    devkit = make_shapes(str(tmp_path), num_train=5, num_test=3, seed=1)
    dataset = voc_dataset(devkit, 'test', SHAPES_CLASSES)
    assert len(dataset) == 3
    assert dataset.metainfo['dataset_type'] == 'VOC2007'
    for i in range(3):
        info = dataset.get_data_info(i)
        _, objs = _objects(osp.join(devkit, 'VOC2007'), info['img_id'])
        got = [(SHAPES_CLASSES[inst['bbox_label']], inst['bbox'])
               for inst in info['instances']]
        # VOC is 1-based: VOCDataset subtracts one from every coordinate
        assert got == [(c, [v - 1 for v in box]) for c, box in objs]


def test_cli_is_idempotent_and_validates(tmp_path, capsys):
    out = str(tmp_path / 'cli')
    main(['--out', out, '--num-train', '3', '--num-test', '1'])
    jpg = osp.join(out, 'VOCdevkit/VOC2007/JPEGImages/000000.jpg')
    mtime = os.stat(jpg).st_mtime_ns
    main(['--out', out, '--num-train', '3', '--num-test', '1'])
    assert os.stat(jpg).st_mtime_ns == mtime  # up to date: not rewritten
    assert 'synthetic VOC tree ready' in capsys.readouterr().out
    with pytest.raises(ValueError, match='min_obj'):
        make_shapes(out, min_obj=3, max_obj=2)


@pytest.mark.parametrize('argv, match', [
    (['--num-test', '-3'], 'num_test >= 0'),
    (['--num-train', '0', '--num-test', '0'], 'at least one image'),
    (['--empty-prob', '1.5'], r'empty_prob must be a probability in \[0, 1\]'),
    (['--size', '8'], 'image size must be >= 32'),
    (['--min-obj', '3', '--max-obj', '1'], 'min_obj <= max_obj'),
])
def test_cli_names_bad_arguments_before_writing(tmp_path, capsys, argv,
                                                match):
    out = tmp_path / 'bad'
    with pytest.raises(SystemExit) as exit_:
        main(['--out', str(out), *argv])
    assert exit_.value.code == 2  # argparse's usage error, no traceback
    assert re.search(match, capsys.readouterr().err)
    assert not out.exists()


def test_class_names_stand_in_for_voc(tmp_path):
    devkit = make_shapes(str(tmp_path), num_train=4, num_test=1, seed=2,
                         class_names=('aeroplane', 'bicycle', 'bird', 'boat'))
    dataset = voc_dataset(devkit, 'trainval')  # VOC's own 20 classes
    labels = {inst['bbox_label'] for i in range(len(dataset))
              for inst in dataset.get_data_info(i)['instances']}
    assert labels and labels <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match='class_names needs 4'):
        make_shapes(str(tmp_path / 'bad'), class_names=('a', 'b'))


def test_pixel_noise_has_the_requested_std(tmp_path):
    """Same seed, same shapes; the noisy image is the clean one plus
    Gaussian noise of the requested std (clipped to [0, 255])."""
    for i in range(3):
        clean, objs = make_image(np.random.default_rng([4, i]), 128, 1, 4,
                                 0., noise=0.)
        noisy, objs_noisy = make_image(np.random.default_rng([4, i]), 128, 1,
                                       4, 0., noise=16.)
        assert objs == objs_noisy
        a = np.asarray(clean, np.float32)
        diff = np.asarray(noisy, np.float32) - a
        inside = (a > 48) & (a < 207)  # away from clipping
        assert abs(diff[inside].mean()) < 1.
        assert 15. < diff[inside].std() < 17.
    with pytest.raises(ValueError, match='noise must be'):
        make_shapes(str(tmp_path / 'bad'), noise=-1.)
    out = str(tmp_path / 'cli')
    main(['--out', out, '--num-train', '2', '--num-test', '1',
          '--noise', '0'])
    jpg = osp.join(out, 'VOCdevkit/VOC2007/JPEGImages/000000.jpg')
    before = open(jpg, 'rb').read()
    main(['--out', out, '--num-train', '2', '--num-test', '1'])
    assert open(jpg, 'rb').read() != before  # other noise: regenerated


def test_texture_is_a_faint_grating_of_the_class_orientation():
    """``texture`` adds, inside each object only, a sinusoid of that
    amplitude whose orientation tells the class (0/45/90/135 degrees)."""
    amplitude, seen = 8., set()
    # per orientation: the (dy, dx) pixel step along which it is constant
    constant_step = {0: (1, 0), 1: (1, -1), 2: (0, 1), 3: (1, 1)}
    for seed in range(60):
        plain, objs = make_image(np.random.default_rng(seed), 128, 1, 1, 0.)
        textured, objs_t = make_image(np.random.default_rng(seed), 128, 1,
                                      1, 0., texture=amplitude)
        assert objs == objs_t
        cls, box = objs[0]
        base = np.asarray(plain, np.float32)
        diff = np.asarray(textured, np.float32) - base
        mask = object_mask(cls, box, 128)
        assert not diff[~mask].any()
        # away from the outline, where the fill is not clipped at 0 or 255
        valid = mask & (base.min(-1) >= 10) & (base.max(-1) <= 245)
        for axis in (0, 1):
            for shift in (-3, 3):
                valid &= np.roll(valid, shift, axis)
        if valid.sum() < 50:
            continue
        d = diff.mean(-1)
        assert 0.75 * amplitude <= np.abs(d[valid]).max() <= amplitude + .5
        dy, dx = constant_step[SHAPES_CLASSES.index(cls)]
        along = np.abs(np.roll(d, (-dy, -dx), (0, 1)) - d)[valid]
        across = np.abs(np.roll(d, (-dx, dy), (0, 1)) - d)[valid]
        assert along.mean() < 0.25 * across.mean(), cls
        seen.add(cls)
    assert seen == set(SHAPES_CLASSES)


def test_outline_contrast_moves_the_outline_from_fill_to_black_or_white(
        tmp_path):
    """Only the outline changes with ``outline_contrast``: it has the fill's
    colour at 0, black or white at 1, half-way at 0.5."""
    for seed in range(10):
        images = {}
        for contrast in (0., .5, 1.):
            image, objs = make_image(np.random.default_rng(seed), 128, 1, 1,
                                     0., outline_contrast=contrast)
            images[contrast] = np.asarray(image, np.float32)
        cls, box = objs[0]
        mask = object_mask(cls, box, 128)
        outline = np.any(images[0.] != images[1.], -1)
        assert outline.any() and not outline[~mask].any()
        assert (mask & ~outline).any()  # a ring around an unchanged fill
        fill = images[0.][mask]
        assert (fill == fill[0]).all()  # no outline at 0: one flat colour
        extreme = images[1.][outline]
        assert (extreme == extreme[0]).all() and extreme[0][0] in (0, 255)
        assert np.abs(images[.5][outline] -
                      (fill[0] + extreme[0]) / 2).max() <= 1.
    with pytest.raises(ValueError, match='outline_contrast must be'):
        make_shapes(str(tmp_path / 'bad'), outline_contrast=1.5)
