"""Cost of adversarial training and robust evaluation, measured in one run.

    python benchmarks/bench_adv.py configs/tiny_ssd_std_shapes.py --batch 16
    python benchmarks/bench_adv.py configs/ssd300_vgg16_std_voc.py --batch 2
    python benchmarks/bench_adv.py configs/yolov3_d53_std_voc.py --batch 32  # GPU

On the same model (random init) and the same synthetic batch:

* median time per training iteration of STD, CLS, LOC, CON and MTD
  (``AdvTrainingLoop``'s step: attack, then the model's ``train_step``) and
  the ratio to STD. Cost model (forward = 1, full backward = 2, input-only
  backward ~1): STD 3; CLS/LOC/CON 3 + 2 = 5 (1.7x); MTD 3 + 3 (one forward
  shared by the cls and loc gradients) + 2 (selection forwards) = 8 (2.7x);
* peak memory per mode: CPU peak RSS of a fresh subprocess that runs only
  that mode (minus its RSS before the first iteration), or
  ``torch.cuda.max_memory_allocated`` on a GPU;
* PGD-k evaluation throughput (images/s) against k bare passes of forward +
  input gradient of the same loss, the lower bound of any k-step attack.

``--profile`` runs torch.profiler over STD, CLS and MTD iterations instead:
per iteration, the wall time, the time the GPU spent in kernels (its busy
share tells a launch-bound step from a compute-bound one), the kernel
launches, the forward convolutions (1, 2 and 4 model forwards in the cost
model above) and the operators with the most CPU and GPU time.

Prints a table and writes JSON. GPU timings use ``torch.cuda.synchronize``.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import threading
import time

import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmdet_robust  # noqa: F401
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet_robust.attacks import PGDAttack, TaskDomainAttacker, TaskLosses
from mmdet_robust.attacks.base import attack_mode
from mmdet_robust.attacks.task_losses import shared_targets
from mmdet_robust.config import load_config
from mmdet_robust.engine.loops import adversarial_train_step
from mmdet_robust.tools.cli import (existing_file, nonnegative_int,
                                    positive_int)

DOMAINS = ('std', 'cls', 'loc', 'con', 'mtd')


def synthetic_batch(batch: int, size: int, num_classes: int, seed: int = 0):
    """Raw batch as a dataloader gives it: uint8 images and GT samples."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=g,
                                    dtype=torch.uint8))
        n = 3
        xy = torch.rand(n, 2, generator=g) * size * 0.6
        wh = torch.rand(n, 2, generator=g) * size * 0.3 + size * 0.1
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1., 1.), img_path=f'synthetic_{i}.jpg'))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, (xy + wh).clamp(max=size - 1)], 1),
            labels=torch.randint(0, num_classes, (n, ), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def input_size(config: str) -> int:
    """Network input side of a config: its test ``Resize`` (SSD300: 300,
    YOLOv3: 416, the tiny detectors: 96)."""
    cfg = load_config(config)
    scale = [t['scale'] for t in cfg.test_dataloader.dataset.pipeline
             if t['type'] == 'Resize'][0]
    return max(scale)


def write_json(path: str, obj) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
    print(f'written to {path}')


def bare_passes(model, data: dict, k: int):
    """A function running ``k`` forward + input-gradient passes of the batch
    cls loss, targets assigned once as inside every attack: the lower bound
    of any k-step attack."""
    losses = TaskLosses(model)

    def run():
        x = data['inputs']
        with attack_mode(model), torch.enable_grad(), \
                shared_targets(model.bbox_head):
            for _ in range(k):
                x = x.detach().requires_grad_(True)
                loss = losses(x, data['data_samples'], per_image=False)
                torch.autograd.grad(loss['cls'], x)
    return run


def sync(device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def timed_together(fns: dict, iters: int, warmup: int, device) -> dict:
    """Median seconds per call of each of ``fns`` (``{name: fn}``), called
    round-robin so that the machine's drift (other load, clocks) hits every
    one alike and the ratios stay comparable."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def timed(fn, iters: int, warmup: int, device) -> float:
    """Median seconds per call."""
    return timed_together(dict(fn=fn), iters, warmup, device)['fn']


class Bench:

    def __init__(self, args) -> None:
        init_default_scope('mmdet')
        cfg = load_config(args.config)
        self.device = torch.device(
            'cuda' if torch.cuda.is_available() and not args.cpu else 'cpu')
        # every batch has the same shape: let cuDNN pick its fastest kernels
        torch.backends.cudnn.benchmark = self.device.type == 'cuda'
        self.model = MODELS.build(cfg.model).to(self.device)
        self.model.init_weights()
        if args.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        optim = copy.deepcopy(cfg.optim_wrapper)
        if args.amp and self.device.type == 'cuda':
            optim.type = 'AmpOptimWrapper'
        self.optim_wrapper = build_optim_wrapper(self.model, optim)
        num_classes = cfg.model.bbox_head.num_classes
        self.raw = synthetic_batch(args.batch, args.size, num_classes)
        self.args = args

    def train_step(self, domain: str):
        attacker = TaskDomainAttacker(domain=domain, eps=8.)

        def step():  # exactly AdvTrainingLoop's iteration
            adversarial_train_step(self.model, self.optim_wrapper, attacker,
                                   copy.deepcopy(self.raw))
        return step

    def train_times(self) -> dict:
        self.model.train()
        return timed_together({d: self.train_step(d) for d in DOMAINS},
                              self.args.iters, self.args.warmup, self.device)

    def peak_memory(self, domain: str) -> float:
        """MiB used by ``domain``'s training iterations."""
        if self.device.type == 'cuda':
            step = self.train_step(domain)
            step()
            sync(self.device)
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            step()
            sync(self.device)
            return (torch.cuda.max_memory_allocated() - base) / 2**20
        # a fresh process: peak RSS is per process, and fork would inherit
        # torch's thread pools
        cmd = [sys.executable, __file__, *self.argv, '--memory-only', domain]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    def pgd_eval(self) -> dict:
        """images/s of PGD-k vs k bare forward + input-gradient passes."""
        self.model.eval()
        data = self.model.data_preprocessor(copy.deepcopy(self.raw), False)
        k, n = self.args.pgd_steps, self.args.batch
        attack = PGDAttack(task='cls', eps=8., steps=k)
        t = timed_together(dict(pgd=lambda: attack(self.model, data),
                                bare=bare_passes(self.model, data, k)),
                           self.args.iters, 1, self.device)
        t_pgd, t_bare = t['pgd'], t['bare']
        return dict(steps=k, pgd_images_per_s=n / t_pgd,
                    bare_images_per_s=n / t_bare, ratio=t_pgd / t_bare)


def _device_us(event) -> float:
    # torch renamed self_cuda_time_total to self_device_time_total in 2.4
    return getattr(event, 'self_device_time_total',
                   getattr(event, 'self_cuda_time_total', 0.))


def profile_step(bench: Bench, domain: str, iters: int) -> dict:
    """One ``domain`` training iteration under torch.profiler, averaged over
    ``iters``: wall and GPU-kernel seconds, launches, top CPU operators."""
    from torch.profiler import ProfilerActivity, profile
    step = bench.train_step(domain)
    step()
    sync(bench.device)
    activities = [ProfilerActivity.CPU]
    if bench.device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(iters):
            step()
        sync(bench.device)
        wall = (time.perf_counter() - start) / iters
    events = prof.key_averages()
    kernel_s = sum(_device_us(e) for e in events) / 1e6 / iters
    launches = sum(e.count for e in events
                   if e.key in ('cudaLaunchKernel', 'cuLaunchKernel',
                                'cudaLaunchKernelExC')) / iters

    def top(key, n):
        return [dict(op=e.key, calls=e.count / iters,
                     self_cpu_s=e.self_cpu_time_total / 1e6 / iters,
                     self_gpu_s=_device_us(e) / 1e6 / iters)
                for e in sorted(events, key=key, reverse=True)[:n]]
    # forward passes of the model, counted in convolutions (backward passes
    # run convolution_backward instead)
    convs = sum(e.count for e in events if e.key == 'aten::convolution')
    return dict(
        wall_s=wall, gpu_kernel_s=kernel_s, gpu_busy=kernel_s / wall,
        kernel_launches=launches, forward_convs=convs / iters,
        top_cpu_ops=top(lambda e: e.self_cpu_time_total, 15),
        top_gpu_ops=top(_device_us, 10))


def run_profile(bench: Bench, args) -> None:
    """``--profile``: print and write :func:`profile_step` of STD, CLS and
    MTD."""
    bench.model.train()
    result = {d: profile_step(bench, d, args.iters)
              for d in ('std', 'cls', 'mtd')}
    print('| mode | s / iter | GPU kernels s | GPU busy | launches |')
    print('|---|---|---|---|---|')
    for d, r in result.items():
        print(f"| {d.upper()} | {r['wall_s']:.3f} | "
              f"{r['gpu_kernel_s']:.3f} | {r['gpu_busy']:.0%} | "
              f"{r['kernel_launches']:.0f} |")
    if args.out:
        write_json(args.out, dict(result, config=args.config,
                                  batch=args.batch, amp=args.amp,
                                  channels_last=args.channels_last))


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_rss_of(bench: Bench, domain: str) -> float:
    """MiB of RSS above the pre-step level at the peak of two training
    iterations of ``domain`` (RSS sampled every millisecond)."""
    bench.model.train()
    step = bench.train_step(domain)
    before = peak = _rss_mib()
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    step()
    step()
    done.set()
    sampler.join()
    return peak - before


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', type=existing_file)
    parser.add_argument('--batch', type=positive_int, default=2)
    parser.add_argument('--size', type=positive_int, default=None,
                        help='input side in pixels (default: from config)')
    parser.add_argument('--iters', type=positive_int, default=5)
    parser.add_argument('--warmup', type=nonnegative_int, default=2)
    parser.add_argument('--pgd-steps', type=positive_int, default=20)
    parser.add_argument('--cpu', action='store_true')
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--out', default=None, help='JSON file')
    parser.add_argument('--profile', action='store_true',
                        help='profile STD, CLS and MTD iterations instead')
    parser.add_argument('--memory-only', choices=DOMAINS,
                        help=argparse.SUPPRESS)  # internal: one CPU probe
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = input_size(args.config)
    torch.manual_seed(0)
    bench = Bench(args)
    bench.argv = argv
    if args.memory_only:
        print(peak_rss_of(bench, args.memory_only))
        return
    if args.profile:
        run_profile(bench, args)
        return
    times = bench.train_times()
    memory = {d: bench.peak_memory(d) for d in ('std', 'cls', 'mtd')}
    pgd = bench.pgd_eval()
    result = dict(
        config=args.config, device=str(bench.device),
        device_name=torch.cuda.get_device_name() if bench.device.type ==
        'cuda' else 'cpu', threads=torch.get_num_threads(),
        batch=args.batch, size=args.size, amp=args.amp,
        channels_last=args.channels_last,
        train_s_per_iter=times,
        ratio_to_std={d: times[d] / times['std'] for d in DOMAINS},
        peak_memory_mib=memory,
        memory_ratio_to_std={d: memory[d] / memory['std'] for d in memory},
        pgd_eval=pgd, command=' '.join(['python'] + sys.argv))
    print(f"\n{args.config}  batch {args.batch}  {args.size}px  "
          f"{result['device_name']}  threads {result['threads']}")
    print('| mode | s / iter | x STD | peak MiB | mem x STD |')
    print('|---|---|---|---|---|')
    for d in DOMAINS:
        mem = f'{memory[d]:.0f} | {memory[d] / memory["std"]:.2f}' \
            if d in memory else '- | -'
        print(f'| {d.upper()} | {times[d]:.3f} | '
              f'{times[d] / times["std"]:.2f} | {mem} |')
    print(f"PGD-{pgd['steps']} eval: {pgd['pgd_images_per_s']:.1f} img/s vs "
          f"{pgd['bare_images_per_s']:.1f} img/s for {pgd['steps']} bare "
          f"passes: {pgd['ratio']:.2f}x")
    if args.out:
        write_json(args.out, result)


if __name__ == '__main__':
    main()
