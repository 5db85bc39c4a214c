"""The robustness report: which metric heads it, and that it is written
whatever the evaluators returned."""
import json

import pytest
import torch

import mmdet
from mmdet_robust.evaluation import (RobustnessReport, environment,
                                     headline_key)
from mmdet_robust.evaluation.environment import describe, package_version
from mmdet_robust.tools.plot_sweep import sweep_curves


def test_headline_key_prefers_map_at_iou_half():
    assert headline_key({'pascal_voc/AP50': .5, 'pascal_voc/mAP': .6}) == \
        'pascal_voc/mAP'
    assert headline_key({'coco/bbox_mAP': .3, 'coco/bbox_mAP_50': .5}) == \
        'coco/bbox_mAP_50'
    assert headline_key({'mine/AP50': .4, 'mine/recall': .9}) == 'mine/AP50'
    assert headline_key({'mine/recall': .9}) is None


def test_entries_without_the_metric_are_reported_not_fatal(tmp_path):
    report = RobustnessReport(
        {'clean': {}, 'cls_pgd': {'coco/bbox_mAP_50': .25},
         'cls_pgd_eps2': {}},
        seconds_per_image={'cls_pgd': .5})
    assert report.key == 'coco/bbox_mAP_50'
    assert report.headline() == {'clean': None, 'cls_pgd': .25,
                                 'cls_pgd_eps2': None}
    rows = report.to_markdown().splitlines()
    assert rows[2] == '| clean | - | - | - | - |'
    assert rows[3] == '| cls_pgd | 25.0 | - | 0.5 | - |'
    paths = report.write(str(tmp_path))
    saved = json.load(open(paths['json']))
    assert saved['mAP']['clean'] is None and saved['mAP']['cls_pgd'] == .25
    assert sweep_curves(saved['mAP']) == {}


def test_ratio_to_clean():
    report = RobustnessReport({'clean': {'pascal_voc/mAP': .8},
                               'dag': {'pascal_voc/mAP': .2}})
    assert report.to_markdown().splitlines()[3] == \
        '| dag | 20.0 | 25.0 | - | - |'


def test_attack_statistics_are_reported(tmp_path):
    stats = {'cls_pgd': {'linf': 7.996},
             'dag': {'dag_at_cap': 0.25, 'dag_iters': 41.5, 'linf': 6.5}}
    report = RobustnessReport({'clean': {'pascal_voc/mAP': .8},
                               'cls_pgd': {'pascal_voc/mAP': .1},
                               'dag': {'pascal_voc/mAP': .2}},
                              attack_stats=stats)
    rows = report.to_markdown().splitlines()
    assert rows[2] == '| clean | 80.0 | 100.0 | - | - |'
    assert rows[3] == '| cls_pgd | 10.0 | 12.5 | - | 8.00 |'
    assert rows[4] == '| dag | 20.0 | 25.0 | - | 6.50 |'
    assert rows[-1] == '- dag: dag_at_cap 0.25, dag_iters 41.5'
    saved = json.load(open(report.write(str(tmp_path))['json']))
    assert saved['attack_stats'] == stats


def test_environment_names_this_process_packages_and_machine():
    env = environment('cpu')
    assert env['device'] == 'cpu'
    assert env['torch_threads'] == torch.get_num_threads()
    assert env['packages']['torch'] == torch.__version__
    assert env['packages']['mmdet'] == mmdet.__version__ == '3.3.0'
    assert env['packages']['mmcv'] == '2.1.0'
    assert env['cpu_capability'] == torch.backends.cpu.get_cpu_capability()
    assert package_version('no_such_module_here') is None
    line = describe(env)
    assert line.startswith('cpu (') and 'mmdet 3.3.0' in line


@pytest.mark.parametrize('split', [False, True])
def test_report_says_where_each_entry_was_computed(tmp_path, split):
    here = environment('cpu')
    elsewhere = dict(here, device='cuda:0 (Some GPU)')
    envs = {'clean': here, 'cls_pgd': elsewhere if split else here}
    report = RobustnessReport({'clean': {'pascal_voc/mAP': .8},
                               'cls_pgd': {'pascal_voc/mAP': .1}},
                              environments=envs)
    rows = report.to_markdown().splitlines()
    if split:  # a resumed run on another machine: one line per machine
        assert rows[-2:] == [f'- clean: computed on {describe(here)}.',
                             f'- cls_pgd: computed on {describe(elsewhere)}.']
    else:
        assert rows[-1] == f'Computed on {describe(here)}.'
    saved = json.load(open(report.write(str(tmp_path))['json']))
    assert saved['environment'] == envs


@pytest.mark.parametrize('checkpoint, trained, lines', [
    (None, None, []),  # random weights: nothing was trained
    ('x.pth', None,
     ['', 'Training environment: not recorded in the checkpoint.']),
    ('x.pth', 'two stretches', None),
    ('x.pth', 'fine-tuned', None),
])
def test_report_says_where_the_checkpoint_was_trained(checkpoint, trained,
                                                      lines):
    here = environment('cpu')
    init = None
    if trained:
        stretches = [dict(environment=None, world_size=None, iters=[0, 50]),
                     dict(environment=here, world_size=2, iters=[50, 80])]
        lines = ['', 'Trained (iterations 0-50) where the checkpoint does '
                 'not record.', 'Trained (iterations 50-80, 2 processes) on '
                 f'{describe(here)}.']
        if trained == 'fine-tuned':  # from a checkpoint without a record
            init = dict(checkpoint='pre.pth', train_environments=None,
                        train_init=None)
            lines[1:1] = ['Initialised from the weights of pre.pth:',
                          '  Training environment: not recorded in the '
                          'checkpoint.']
        trained = stretches
    report = RobustnessReport(
        {'clean': {'pascal_voc/mAP': .8}}, environments={'clean': here},
        model=dict(config='c.py', checkpoint=checkpoint,
                   train_environments=trained, train_init=init))
    rows = report.to_markdown().splitlines()
    assert rows[rows.index(f'Computed on {describe(here)}.') + 1:] == lines
    assert report.to_dict()['model']['train_environments'] == trained
    assert report.to_dict()['model']['train_init'] == init
