import json
import os
import os.path as osp
import re
import threading
import warnings

import pytest
import torch
from PIL import Image

from conftest import REPO
import mmdet_robust
from mmdet_robust.config import load_config
from mmdet_robust.evaluation import environment
from mmdet_robust.evaluation.environment import describe
from mmdet_robust.engine.robust_test_loop import (attack_configs,
                                                  evaluation_setup,
                                                  json_normalised)
from mmdet_robust.tools import demo as demo_module
from mmdet_robust.tools.demo import (Demo, StageError, _run_tool,
                                     _tool_env, console_line, parse_args)
from mmdet_robust.tools.demo_report import figure_columns


def _demo_args(shapes_root, tmp_path, **extra):
    eval_cfg = tmp_path / 'eval.py'
    eval_cfg.write_text(
        f"_base_ = '{REPO}/configs/robust_eval/tiny_ssd_shapes.py'\n"
        "test_cfg = dict(attacks=dict(cls_pgd=dict(steps=2), "
        "loc_pgd=dict(steps=2), con_pgd=dict(steps=2), "
        "dag=dict(max_iters=3), "
        "dag_dense=dict(max_iters=3), rap=dict(steps=2)))\n")
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    workers = [f'{k}.{o}' for k in loaders for o in (
        'num_workers=0', 'persistent_workers=False')]
    args = ['--data-root', shapes_root, '--work-dir', str(tmp_path / 'demo'),
            '--eval-config', str(eval_cfg), '--eval-images', '4',
            '--train-options', 'train_cfg.max_epochs=1',
            'train_dataloader.dataset.indices=16', *workers,
            '--eval-options', *workers[4:]]
    for key, value in extra.items():
        args += [f'--{key.replace("_", "-")}', value]
    return parse_args(args)


@pytest.mark.slow
def test_demo_pipeline_writes_every_report_file(shapes_root, tmp_path,
                                                capsys):
    Demo(_demo_args(shapes_root, tmp_path, jobs='2')).run()
    out = capsys.readouterr().out
    work = tmp_path / 'demo'
    report = json.load(open(work / 'report.json'))
    # --jobs 2 trained and evaluated the two models side by side, to the
    # same bits as one stage at a time (--jobs 1, the default)
    assert 'train_mtd' in report['beside']['train_std']
    assert '    [train_mtd] ' in out and '    [eval_std] ' in out
    # each evaluation's progress, its last batch at least, from the line's
    # head (the time of day, not mmengine's date)
    for model in ('std', 'mtd'):
        assert re.search(rf'^    \[eval_{model}\] \d\d:\d\d:\d\d robust test '
                         r'\[(\d+)/\1\] batches \(\d+ entries\), elapsed ',
                         out, re.M), out
    alone = tmp_path / 'alone'
    alone.mkdir()
    Demo(_demo_args(shapes_root, alone, jobs='1')).run()
    capsys.readouterr()
    for model in ('std', 'mtd'):
        ckpts = [torch.load(demo_module._checkpoint(str(d / 'demo' / model)),
                            weights_only=False)['state_dict']
                 for d in (tmp_path, alone)]
        assert ckpts[0].keys() == ckpts[1].keys()
        assert all(torch.equal(ckpts[0][k], ckpts[1][k]) for k in ckpts[0])
        maps = [json.load(open(d / 'demo' / model / 'robustness.json'))[
            'mAP'] for d in (tmp_path, alone)]
        assert maps[0] == maps[1]
    assert json.load(open(alone / 'demo' / 'beside.json'))[
        'train_std'] == []
    for model in ('std', 'mtd'):
        assert set(report['mAP'][model]) == {
            'clean', 'cls_pgd', 'loc_pgd', 'con_pgd', 'dag', 'dag_dense',
            'rap'}
        for axis in ('eps', 'steps'):
            assert len(report['sweeps'][model][axis]['cls']) == 5
    assert {'train_std', 'train_mtd', 'eval_std', 'eval_mtd'} <= set(
        report['timings_s'])
    for model, seconds in report['seconds_per_image'].items():
        assert set(seconds) == set(report['mAP'][model])
        assert all(v > 0 for v in seconds.values())
    for model, stats in report['attack_stats'].items():
        assert set(stats) == set(report['mAP'][model]) - {'clean'}
        assert all(0 <= s['linf'] <= 8 + 1e-3 for s in stats.values())
        assert stats['cls_pgd']['linf'] > 0
        assert 0 <= stats['dag']['dag_iters'] <= 150
    md = (work / 'report.md').read_text()
    assert '| STD |' in md and '| MTD |' in md and 'Wall time' in md
    # where both evaluations ran: this process's machine and packages
    here = environment('cpu')
    for model in ('std', 'mtd'):
        env = report['environment'][model]
        assert env['packages'] == here['packages']
        assert env['device'] == 'cpu' and env['cpu'] == here['cpu']
    assert f'Evaluated on {describe(env)}.' in md
    # and where both were trained, as their checkpoints record it
    for model in ('std', 'mtd'):
        assert report['trained'][model]['train_init'] is None  # warm-up
        (trained, ) = report['trained'][model]['train_environments']
        assert trained['environment'] == env and trained['world_size'] == 1
        begin, end = trained['iters']
        assert begin == 0 and end > 0
        assert f'{model.upper()}: Trained (iterations 0-{end}, 1 process) ' \
            f'on {describe(env)}.' in md
    assert '- dag, MTD: ' in md and 'iterations per image' in md
    assert 'ms per test image' in md
    assert 'MTD starts from the config\'s own initialisation, on clean ' \
        'batches for the first half' in md
    assert report['settings']['mtd_init'] == 'warmup'
    for png in ('mAP_vs_eps.png', 'mAP_vs_steps.png', 'detections.png'):
        path = work / png
        assert path.stat().st_size > 10_000
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert min(im.size) > 300
    assert '| model | clean |' in out and 'report.md' in out

    # a second run reuses every finished stage
    Demo(_demo_args(shapes_root, tmp_path)).run()
    out = capsys.readouterr().out
    for stage in ('train_std', 'train_mtd', 'eval_std', 'eval_mtd'):
        assert f'[demo] {stage}: done before, reused' in out

    # an attack changed in the eval config: both evaluations run again,
    # and RobustTestLoop recomputes only that attack's entry
    args = _demo_args(shapes_root, tmp_path)
    args.eval_options.append('test_cfg.attacks.rap.steps=3')
    Demo(args).run()
    out = capsys.readouterr().out
    for model in ('std', 'mtd'):
        assert f'[demo] train_{model}: done before, reused' in out
        assert f'[demo] eval_{model} ...' in out
        log = (work / f'eval_{model}.log').read_text()
        assert 'reusing finished entries' in log
        rerun = log.split('reusing finished entries')[1].split('\n')[0]
        assert 'cls_pgd' in rerun and 'rap' not in rerun.split(', ')
        prints = json.load(open(work / model / 'robustness.json'))[
            'fingerprints']
        assert prints['rap']['attack']['steps'] == 3


def test_a_failing_stage_is_named(shapes_root, tmp_path):
    broken = tmp_path / 'broken.py'
    broken.write_text(f"_base_ = '{REPO}/configs/tiny_ssd_std_shapes.py'\n"
                      "model = dict(type='NoSuchDetector')\n")
    args = _demo_args(shapes_root, tmp_path, config=str(broken))
    with pytest.raises(SystemExit, match="stage 'train_std' failed") as info:
        Demo(args).run()
    assert "stage 'train_mtd' failed" in str(info.value)  # its own chain


def test_a_stage_failing_with_any_error_is_named(tmp_path):
    """Not only the tools' failures: any error in a stage (here the report
    stage's) ends the demo with the stage's name and the error, and the
    timings of the stages that finished stay recorded."""
    args = parse_args(['--work-dir', str(tmp_path / 'demo')])
    demo = Demo(args)
    demo.stage('train_std', lambda: None, lambda: False)

    def broken():
        raise OSError('No space left on device')

    with pytest.raises(SystemExit, match="stage 'report' failed: OSError: "
                       'No space left on device'):
        demo.stage('report', broken, lambda: False)
    timings = json.load(open(tmp_path / 'demo' / 'timings.json'))
    assert 'train_std' in timings and 'report' not in timings


def _recording_demo(tmp_path, monkeypatch, *flags, meet=(), fail=()):
    """A demo whose training and evaluation stages only log when they start
    and end; the stages in ``meet`` wait at a barrier that only stages
    running at the same time pass, those in ``fail`` fail as a tool
    does."""
    log, barrier = [], threading.Barrier(max(len(meet), 1), timeout=30)

    def stage(self, name):
        def run():
            log.append(f'{name} start')
            if name in meet:
                barrier.wait()
            if name in fail:
                raise StageError(f'test.py exited with 1; see {name}.log')
            log.append(f'{name} end')
        self.stage(name, run, lambda: False)

    def report(demo):
        (tmp_path / 'demo' / 'report.md').write_text('| model |\n')

    monkeypatch.setattr(Demo, 'train', lambda d, m: stage(d, f'train_{m}'))
    monkeypatch.setattr(Demo, 'evaluate', lambda d, m: stage(d, f'eval_{m}'))
    monkeypatch.setattr(demo_module, 'make_shapes', lambda root: None)
    from mmdet_robust.tools import demo_report
    monkeypatch.setattr(demo_report, 'write_demo_report', report)
    demo = Demo(parse_args(['--work-dir', str(tmp_path / 'demo'), *flags]))
    return demo, log


@pytest.mark.parametrize('mtd_init, meet', [
    ('warmup', ('train_std', 'train_mtd')),
    ('std', ('eval_std', 'train_mtd'))])
def test_the_two_models_stages_run_side_by_side(tmp_path, monkeypatch,
                                                mtd_init, meet):
    """``--jobs 2``: STD's and MTD's chains run at once (the
    two stages in ``meet`` pass a barrier together), each in order train ->
    evaluate; with ``--mtd-init std`` MTD trains after STD's checkpoint
    exists, beside STD's evaluation. Each stage records what ran beside
    it."""
    demo, log = _recording_demo(tmp_path, monkeypatch, '--jobs', '2',
                                '--mtd-init', mtd_init, meet=meet)
    demo.run()
    for model in ('std', 'mtd'):
        assert log.index(f'train_{model} end') < log.index(
            f'eval_{model} start')
    if mtd_init == 'std':
        assert log.index('train_std end') < log.index('train_mtd start')
    beside = json.load(open(tmp_path / 'demo' / 'beside.json'))
    assert meet[1] in beside[meet[0]] and meet[0] in beside[meet[1]]
    assert beside['data'] == [] and beside['report'] == []


def test_one_job_runs_one_stage_at_a_time(tmp_path, monkeypatch):
    """``--jobs 1``, the default."""
    monkeypatch.delenv('DEMO_JOBS', raising=False)
    demo, log = _recording_demo(tmp_path, monkeypatch)
    demo.run()
    assert log == [f'{s} {e}' for s in ('train_std', 'eval_std', 'train_mtd',
                                        'eval_mtd') for e in ('start', 'end')]
    beside = json.load(open(tmp_path / 'demo' / 'beside.json'))
    assert set(beside) == {'data', 'train_std', 'eval_std', 'train_mtd',
                           'eval_mtd', 'report'}
    assert not any(beside.values())


@pytest.mark.parametrize('jobs', ['1', '2'])
def test_a_failing_stage_stops_only_its_own_chain(tmp_path, monkeypatch,
                                                  capsys, jobs):
    """STD's evaluation fails: MTD's training and evaluation still run and
    are recorded (nothing for the next run to redo), then the demo stops
    naming the failed stage, without a report."""
    demo, log = _recording_demo(tmp_path, monkeypatch, '--jobs', jobs,
                                fail=('eval_std', ))
    with pytest.raises(SystemExit) as info:
        demo.run()
    assert str(info.value) == ("[demo] stage 'eval_std' failed: test.py "
                               'exited with 1; see eval_std.log')
    assert 'eval_mtd end' in log
    timings = json.load(open(tmp_path / 'demo' / 'timings.json'))
    assert set(timings) == {'data', 'train_std', 'train_mtd', 'eval_mtd'}
    assert "failed: test.py exited with 1; see eval_std.log; the other " \
        'stages go on' in capsys.readouterr().out


def test_tools_print_tagged_lines_and_wait_passively_side_by_side(
        tmp_path, monkeypatch, capsys):
    """Each streamed log line names its stage; with more than one job the
    tools' OpenMP threads wait passively (unless the user chose), which
    leaves torch's thread count, and so the results, as with one job."""
    tools = tmp_path / 'tools'
    tools.mkdir()
    (tools / 'echo.py').write_text(
        'import os, sys\n'
        "print('x - mmengine - OMP_WAIT_POLICY=' + os.environ.get("
        "'OMP_WAIT_POLICY', 'unset'))\n"
        'sys.exit(int(sys.argv[1]))\n')
    monkeypatch.setattr(demo_module, 'MMDET_TOOLS', str(tools))
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    log = str(tmp_path / 'echo.log')
    for jobs, policy in ((2, 'PASSIVE'), (1, 'unset')):
        _run_tool('echo.py', ['0'], [], log, 'eval_mtd', _tool_env(jobs))
        assert capsys.readouterr().out == (
            f'    [eval_mtd] x - mmengine - OMP_WAIT_POLICY={policy}\n')
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')
    assert _tool_env(2)['OMP_WAIT_POLICY'] == 'ACTIVE'
    with pytest.raises(StageError, match=f'echo.py exited with 3; see {log}'):
        _run_tool('echo.py', ['3'], [], log, 'eval_mtd', _tool_env(2))


def test_console_lines_keep_the_progress():
    """The console drops mmengine's date, logger name and INFO level and
    keeps the head of a line: the epoch and iteration of a training line
    (a tail cut showed ``rain) [23][20/32] ...``), the level of a warning,
    every character of an error; a record whose message starts on the next
    line (VOCMetric's tables) is not shown."""
    train = ('11/29 13:58:40 - mmengine - INFO - Epoch(train) [23][20/32]  '
             'lr: 2.1527e-04  eta: 0:00:14  time: 0.3219  data_time: 0.0286'
             '  grad_norm: 5.2397  loss: 1.1042  loss_cls: 0.7992  '
             'loss_bbox: 0.3049  adv_cls_frac: 0.5000  adv_linf: 8.0000\n')
    shown = console_line(train)
    assert shown.startswith('13:58:40 Epoch(train) [23][20/32]  lr: ')
    assert len(shown) == 160 and shown.endswith('...')
    assert console_line(train, width=400) == \
        '13:58:40 ' + train.split(' - INFO - ')[1].rstrip()
    assert console_line('11/29 13:59:04 - mmengine - INFO -\n') == ''
    assert console_line('11/29 13:59:05 - mmengine - WARNING - no val\n') \
        == '13:59:05 WARNING no val'
    error = 'ValueError: test_cfg.attacks.dag: ' + 'x' * 300
    assert console_line(error + '\n') == error
    assert console_line('x' * 200 + '\n') == 'x' * 157 + '...'


@pytest.mark.parametrize('load', [
    lambda config: demo_module._load_config(config, []),
    load_config], ids=['demo', 'tools'])
def test_config_loads_do_not_print_the_pkg_resources_warning(load):
    """Each ``mmdet::`` base config reloads pkg_resources, whose
    deprecation warning (setuptools<81 is kept on purpose) reached the
    demo's console before every stage and in its report stage."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(2):
            cfg = load(osp.join(REPO, 'configs/robust_eval/'
                                      'tiny_ssd_shapes.py'))
    assert not [w for w in caught if 'pkg_resources' in str(w.message)]
    assert cfg.test_cfg.type == 'RobustTestLoop'


def test_configs_load_in_stages_side_by_side():
    """mmengine reloads pkg_resources for each ``mmdet::`` base config:
    unserialised, about a third of these loads failed with "Expected str,
    Requirement, or Distribution"."""
    errors = []

    def load():
        for _ in range(15):
            try:
                demo_module._load_config('configs/tiny_ssd_std_shapes.py',
                                         [])
            except Exception as err:  # noqa: BLE001
                errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_training_stages_follow_their_inputs(tmp_path, monkeypatch):
    """MTD trains from scratch with a clean first half (``warmup``, the
    default), from scratch, or from the STD checkpoint (``std``);
    a training stage is redone when the data or, for MTD, the STD checkpoint
    is newer than its own checkpoint, and reused otherwise."""
    clock, runs = [100.], []

    def tick(path):
        clock[0] += 10
        os.utime(path, (clock[0], clock[0]))

    def fake_train(tool, args, options, log_path, *rest):
        work_dir = args[args.index('--work-dir') + 1]
        runs.append((osp.basename(work_dir), list(options)))
        os.makedirs(work_dir, exist_ok=True)
        ckpt = osp.join(work_dir, 'epoch_24.pth')
        open(ckpt, 'w').close()
        tick(ckpt)
        with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)

    monkeypatch.setattr(demo_module, '_run_tool', fake_train)

    def train_both(*flags, work_dir='demo'):
        demo = Demo(parse_args(['--work-dir', str(tmp_path / work_dir),
                                *flags]))
        demo.data_stamp = str(stamp)
        runs.clear()
        for model in ('std', 'mtd'):
            demo.train(model)
        return [model for model, _ in runs]

    stamp = tmp_path / 'make_shapes.json'
    stamp.write_text('{}')
    tick(stamp)
    std_ckpt = str(tmp_path / 'demo' / 'std' / 'epoch_24.pth')
    from_std = ('--mtd-init', 'std')
    assert train_both(*from_std) == ['std', 'mtd']
    assert f'load_from={std_ckpt}' in runs[1][1]
    assert 'train_cfg.attacker.domain=mtd' in runs[1][1]
    assert not any(o.startswith('load_from') for o in runs[0][1])
    assert train_both(*from_std) == []  # everything reused
    tick(stamp)  # regenerated data
    assert train_both(*from_std) == ['std', 'mtd']
    tick(std_ckpt)  # a newer STD model
    assert train_both(*from_std) == ['mtd']
    scratch = ('--mtd-init', 'scratch')
    assert train_both(*scratch, work_dir='scratch') == ['std', 'mtd']
    assert not any(o.startswith('load_from') for o in runs[1][1])
    tick(str(tmp_path / 'scratch' / 'std' / 'epoch_24.pth'))
    assert train_both(*scratch, work_dir='scratch') == []  # not an input
    # warmup (the default): from scratch, clean for the first half of the
    # same schedule
    assert train_both(work_dir='warmup') == ['std', 'mtd']
    assert 'train_cfg.adv_begin=12' in runs[1][1]  # of the config's 24
    assert not any(o.startswith('load_from') for o in runs[1][1])
    assert train_both('--mtd-init', 'warmup', '--train-options',
                      'train_cfg.max_epochs=5', work_dir='warmup5') == [
        'std', 'mtd']
    assert 'train_cfg.adv_begin=2' in runs[1][1]
    assert not any('adv_begin' in o for o in runs[0][1])
    assert not any('attacker=None' in o for o in runs[0][1])
    # an adversarial config of the family as --config (the issue's
    # DEMO_CONFIG=configs/ssd300_vgg16_mtd_voc.py): STD keeps its loop
    # without an attacker, so it trains on clean batches throughout
    mtd_config = 'configs/tiny_ssd_mtd_shapes.py'
    assert train_both('--config', mtd_config, work_dir='from_mtd') == [
        'std', 'mtd']
    assert runs[0][1][-2:] == demo_module.STD_FROM_ADVERSARIAL
    assert 'train_cfg.attacker.domain=mtd' in runs[1][1]
    assert 'train_cfg.adv_begin=12' in runs[1][1]
    std_cfg = demo_module._load_config(
        mtd_config, demo_module.STD_FROM_ADVERSARIAL).train_cfg
    assert std_cfg.attacker is None and std_cfg.adv_begin == 0
    with pytest.raises(SystemExit):
        parse_args(['--mtd-init', 'imagenet'])


def test_eval_stage_is_redone_for_a_changed_attack_setup_or_version(
        tmp_path, monkeypatch):
    """The evaluation stage counts as done only while its report has every
    configured attack with the same settings, under the same model, test
    data and evaluator settings, computed by this version."""
    config = osp.join(REPO, 'configs/robust_eval/tiny_ssd_shapes.py')
    cfg = demo_module._load_config(config, [])
    wanted = json_normalised(attack_configs(cfg.test_cfg.attacks))
    setup = evaluation_setup(cfg)
    report = tmp_path / 'robustness.json'

    def write(version, setup=setup, **changed):
        prints = {name: dict(attack=dict(cfg, **changed.get(name, {})),
                             setup=setup, mmdet_robust=version)
                  for name, cfg in wanted.items()}
        report.write_text(json.dumps(dict(fingerprints=prints)))
        return demo_module._report_covers(str(report), config, [])

    assert write(mmdet_robust.__version__)
    assert not write(mmdet_robust.__version__, rap=dict(steps=3))
    assert not write('0.0.1')
    assert not write(None)  # a report from before versions were recorded
    assert not write(mmdet_robust.__version__, setup=None)  # nor setups
    # the same attacks on a model that predicts by another rule, with
    # another score threshold, or on other test data
    write(mmdet_robust.__version__)
    one_label = osp.join(REPO,
                         'configs/robust_eval/tiny_ssd_shapes_one_label.py')
    assert not demo_module._report_covers(str(report), one_label, [])
    for option in ('model.test_cfg.score_thr=0.5',
                   'test_dataloader.dataset.data_root=elsewhere/'):
        assert not demo_module._report_covers(str(report), config, [option])
    assert demo_module._report_covers(str(report), config, [])


def test_figure_shows_the_papers_columns_the_eval_config_has():
    """An eval config without DAG and RAP (a head they cannot read): its
    figure shows clean and cls-PGD instead of failing after both
    evaluations."""
    paper = dict(cls_pgd={}, loc_pgd={}, con_pgd={}, dag={}, dag_dense={},
                 rap={})
    assert figure_columns(paper) == ('clean', 'cls_pgd', 'dag', 'rap')
    assert figure_columns(dict(cls_pgd={}, loc_pgd={}, con_pgd={})) == (
        'clean', 'cls_pgd')


@pytest.mark.parametrize('argv, env, match', [
    (['--eval-images', '0'], {}, "an integer >= 1, got '0'"),
    ([], {'DEMO_EVAL_IMAGES': 'all'}, "an integer >= 1, got 'all'"),
    ([], {'DEMO_MTD_INIT': 'half'}, "DEMO_MTD_INIT='half': choose one of"),
    (['--eval-config', 'configs/robust_eval/nope.py'], {},
     "--eval-config 'configs/robust_eval/nope.py' is not a file"),
    ([], {'DEMO_CONFIG': 'configs/nope.py'},
     "--config 'configs/nope.py' is not a file"),
    (['--data-root', 'data/no_such_devkit/'], {},
     "--data-root 'data/no_such_devkit/' is not a directory"),
    ([], {'DEMO_JOBS': '0'}, "an integer >= 1, got '0'"),
])
def test_bad_flags_and_env_stop_before_any_stage(argv, env, match,
                                                 monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert match in capsys.readouterr().err
    for name in ('DEMO_EVAL_IMAGES', 'DEMO_MTD_INIT', 'DEMO_CONFIG',
                 'DEMO_JOBS'):
        monkeypatch.delenv(name, raising=False)
    assert parse_args([]).eval_images == 50
    assert parse_args([]).jobs == 1
