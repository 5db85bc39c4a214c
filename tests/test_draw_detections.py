"""The detections figure tool (the paper's Fig. 1/7/8 for any model)."""
import re

import pytest
from matplotlib.image import imread

from conftest import ROBUST_CFG
from mmdet_robust.tools.draw_detections import main


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
