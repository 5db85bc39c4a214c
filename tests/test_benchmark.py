import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_bench_adv_reports_every_mode(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', 'bench_adv.py'),
         osp.join(REPO, 'configs', 'tiny_ssd_std_shapes.py'), '--batch', '2',
         '--iters', '1', '--warmup', '1', '--pgd-steps', '2', '--out',
         str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out))
    assert set(result['ratio_to_std']) == {'std', 'cls', 'loc', 'con', 'mtd'}
    assert result['ratio_to_std']['std'] == 1.
    # structure only: timings belong to the benchmark, not to tests
    assert all(t > 0 for t in result['train_s_per_iter'].values())
    assert all(v > 0 for v in result['peak_memory_mib'].values())
    assert '| MTD |' in proc.stdout and 'PGD-2 eval' in proc.stdout


@pytest.mark.slow
def test_bench_adv_profile_counts_the_model_passes(tmp_path):
    """``--profile``: per iteration, STD runs one model forward, CLS two
    (attack + training step), MTD four (the shared cls/loc attack forward,
    two selection forwards, the training step), the cost model of
    BENCHMARKS.md; counted in convolutions, so exact."""
    out = tmp_path / 'profile.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', 'bench_adv.py'),
         osp.join(REPO, 'configs', 'tiny_ssd_std_shapes.py'), '--batch', '2',
         '--iters', '1', '--profile', '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out))
    convs = {d: result[d]['forward_convs'] for d in ('std', 'cls', 'mtd')}
    assert convs['std'] > 0
    assert convs['cls'] == 2 * convs['std'] and \
        convs['mtd'] == 4 * convs['std'], convs
    for mode in ('std', 'cls', 'mtd'):  # no GPU here: no kernel time
        assert result[mode]['gpu_kernel_s'] == 0 and result[mode]['wall_s'] > 0
        assert result[mode]['top_cpu_ops']
    assert '| MTD |' in proc.stdout


def test_gpu_checks_hold_on_the_cpu(tmp_path):
    """``gpu_checks.py`` runs everywhere (bf16 autocast on a CPU, no sync
    count): every attack's invariants hold and it says so."""
    out = tmp_path / 'checks.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', 'gpu_checks.py'),
         osp.join(REPO, 'configs', 'tiny_ssd_std_shapes.py'), '--batch', '4',
         '--cpu', '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.load(open(out))
    assert [c['attack'] for c in result['attacks']] == [
        'cls_domain', 'loc_domain', 'con_domain', 'mtd_domain', 'cls_pgd20',
        'loc_pgd20', 'dag', 'rap']
    for check in result['attacks']:
        assert check['ok'] and check['dtype'] == 'torch.float32'
        assert check['linf'] <= 8. + 1e-2
    assert result['autocast'] == 'bfloat16' and result['host_syncs'] is None


def _script(name: str):
    """A benchmark script imported as a module (its directory on
    ``sys.path``, as when it runs)."""
    bench_dir = osp.join(REPO, 'benchmarks')
    if bench_dir not in sys.path:
        sys.path.insert(0, bench_dir)
    spec = importlib.util.spec_from_file_location(
        name[:-len('.py')], osp.join(bench_dir, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('config, size', [
    ('ssd300_vgg16_std_voc.py', 300), ('yolov3_d53_std_voc.py', 416),
    ('tiny_ssd_std_shapes.py', 96), ('tiny_yolov3_std_shapes.py', 96)])
def test_bench_input_size_is_the_configs_test_resize(config, size):
    bench = _script('bench_adv.py')
    assert bench.input_size(osp.join(REPO, 'configs', config)) == size


@pytest.mark.parametrize('script, argv, match', [
    ('bench_adv.py', ['configs/nope.py'], "config: 'configs/nope.py' is not"),
    ('bench_adv.py', ['configs/tiny_ssd_std_shapes.py', '--iters', '0'],
     "--iters: expected an integer >= 1, got '0'"),
    ('bench_adv.py', ['configs/tiny_ssd_std_shapes.py', '--warmup', '-1'],
     "--warmup: expected an integer >= 0, got '-1'"),
    ('arch_table.py', ['--batch', 'two'],
     "--batch: expected an integer >= 1, got 'two'"),
    ('gpu_checks.py', ['nope.py'], "config: 'nope.py' is not a file"),
])
def test_benchmarks_check_their_arguments_first(script, argv, match,
                                                capsys, monkeypatch):
    """A bad flag is a usage error (exit 2), not a traceback from the
    benchmark's first iteration (``--iters 0`` failed in ``statistics``)."""
    monkeypatch.chdir(REPO)
    main = _script(script).main
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.slow
def test_a_bad_flag_on_the_command_line_is_a_usage_error():
    """The same check as a user meets it: the script run as a program."""
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', 'bench_adv.py'),
         'configs/tiny_ssd_std_shapes.py', '--iters', '0'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--iters: expected an integer >= 1, got '0'" in proc.stderr
    assert 'Traceback' not in proc.stderr
