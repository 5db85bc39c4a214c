"""What only a GPU can show: host syncs of the attack loop, and every attack
under fp16 autocast on a channels_last model.

    python benchmarks/gpu_checks.py configs/ssd300_vgg16_std_voc.py --batch 8

On the random-init model and synthetic batch of ``bench_adv.py``:

* host synchronisations counted by ``torch.cuda.set_sync_debug_mode``: one
  PGD step, measured as ``(syncs(PGD-k2) - syncs(PGD-k1)) / (k2 - k1)`` so
  the once-per-attack set-up drops out, against one bare forward +
  input-gradient pass of the same loss measured the same way. Equal counts
  mean the attack loop adds no synchronisation to what the detector's own
  loss code does;
* each attack (task-domain CLS/LOC/CON/MTD, PGD-20 cls/loc, DAG, RAP) inside
  ``torch.autocast`` (fp16 on a GPU, bf16 on a CPU) with a channels_last
  model and input: the adversarial batch is float32, in the eps ball and in
  [0, 255], no parameter has a ``.grad``, the BatchNorm running statistics
  are unchanged, and (task-loss attacks) the attacked loss went up.

Prints a table, writes JSON, exits 1 if a check fails.
"""
import argparse
import os.path as osp
import sys
import warnings

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_adv import (Bench, bare_passes, input_size,  # noqa: E402
                       write_json)

from mmdet_robust.attacks import (DAGAttack, PGDAttack, RAPAttack,  # noqa
                                  TaskDomainAttacker, TaskLosses)
from mmdet_robust.attacks.pixel_space import PixelSpace  # noqa: E402
from mmdet_robust.tools.cli import existing_file, positive_int  # noqa: E402

EPS = 8.


def count_syncs(fn) -> int:
    """Host synchronisations the CUDA runtime reports while ``fn`` runs."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        torch.cuda.set_sync_debug_mode('warn')
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    return sum('synchroniz' in str(w.message) for w in caught)


def syncs_per_step(model, data, k1: int = 2, k2: int = 6) -> dict:
    def bare(k):
        return bare_passes(model, data, k)

    def pgd(k):
        return lambda: PGDAttack(task='cls', eps=EPS, steps=k)(model, data)

    count = {name: {k: count_syncs(fn(k)) for k in (k1, k2)}
             for name, fn in (('pgd', pgd), ('bare', bare))}
    per = {name: (c[k2] - c[k1]) / (k2 - k1) for name, c in count.items()}
    return dict(pgd_step=per['pgd'], bare_pass=per['bare'],
                added_by_attack=per['pgd'] - per['bare'],
                raw={n: {str(k): v for k, v in c.items()}
                     for n, c in count.items()})


def bn_state(model) -> list:
    return [b.clone() for n, b in model.named_buffers()
            if n.endswith(('running_mean', 'running_var'))]


def check_attack(model, data, name: str, attack, task) -> dict:
    """One attack inside autocast; every invariant as a boolean."""
    device = data['inputs'].device
    space = PixelSpace(model.data_preprocessor, data['inputs'],
                       data['data_samples'])
    x = space.clean_pixels()
    before = bn_state(model)
    model.zero_grad(set_to_none=True)
    amp_dtype = torch.float16 if device.type == 'cuda' else torch.bfloat16
    with torch.autocast(device.type, dtype=amp_dtype):
        adv = attack(model, data)
    x_adv = space.to_pixel(adv['inputs'])
    out = dict(
        attack=name, dtype=str(adv['inputs'].dtype),
        linf=float((x_adv - x).abs().max()),
        in_range=bool(x_adv.min() >= -1e-2 and x_adv.max() <= 255 + 1e-2),
        no_param_grad=all(p.grad is None for p in model.parameters()),
        bn_unchanged=all(torch.equal(a, b)
                         for a, b in zip(before, bn_state(model))))
    out['in_ball'] = out['linf'] <= EPS + 1e-2
    out['float32'] = adv['inputs'].dtype == torch.float32
    if task is not None:
        losses = TaskLosses(model)
        with torch.no_grad():
            clean = float(losses(data['inputs'], data['data_samples'])[task]
                          .sum())
            attacked = float(losses(adv['inputs'], data['data_samples'])
                             [task].sum())
        out.update(task=task, loss_clean=clean, loss_adv=attacked,
                   loss_up=attacked > clean)
    keys = ('float32', 'in_ball', 'in_range', 'no_param_grad',
            'bn_unchanged') + (('loss_up', ) if task else ())
    out['ok'] = all(out[k] for k in keys)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', type=existing_file)
    parser.add_argument('--batch', type=positive_int, default=8)
    parser.add_argument('--size', type=positive_int, default=None)
    parser.add_argument('--cpu', action='store_true')
    parser.add_argument('--out', default=None, help='JSON file')
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = input_size(args.config)
    for name, value in dict(amp=False, channels_last=True).items():
        setattr(args, name, value)
    torch.manual_seed(0)
    bench = Bench(args)  # channels_last model
    model = bench.model.eval()
    data = model.data_preprocessor(bench.raw, False)
    data['inputs'] = data['inputs'].contiguous(
        memory_format=torch.channels_last)

    attacks = {
        **{f'{d}_domain': (TaskDomainAttacker(domain=d, eps=EPS),
                           'con' if d == 'mtd' else d)
           for d in ('cls', 'loc', 'con', 'mtd')},
        'cls_pgd20': (PGDAttack(task='cls', eps=EPS, steps=20), 'cls'),
        'loc_pgd20': (PGDAttack(task='loc', eps=EPS, steps=20), 'loc'),
        'dag': (DAGAttack(eps=EPS, max_iters=20), None),
        'rap': (RAPAttack(eps=EPS, steps=20), None),
    }
    checks = [check_attack(model, data, name, attack, task)
              for name, (attack, task) in attacks.items()]
    syncs = syncs_per_step(model, data) \
        if bench.device.type == 'cuda' else None
    result = dict(config=args.config, device=str(bench.device),
                  device_name=torch.cuda.get_device_name()
                  if bench.device.type == 'cuda' else 'cpu',
                  batch=args.batch, size=args.size, channels_last=True,
                  autocast='float16' if bench.device.type == 'cuda'
                  else 'bfloat16', attacks=checks, host_syncs=syncs,
                  command=' '.join(['python'] + sys.argv))
    print(f"\n{args.config}  batch {args.batch}  {args.size}px  "
          f"{result['device_name']}  autocast {result['autocast']}  "
          'channels_last')
    print('| attack | dtype | L_inf | in [0,255] | no param grad | BN same '
          '| loss clean -> adv | ok |')
    print('|---|---|---|---|---|---|---|---|')
    for c in checks:
        loss = (f"{c['task']} {c['loss_clean']:.3g} -> {c['loss_adv']:.3g}"
                if 'task' in c else '-')
        print(f"| {c['attack']} | {c['dtype']} | {c['linf']:.2f} | "
              f"{c['in_range']} | {c['no_param_grad']} | {c['bn_unchanged']}"
              f" | {loss} | {c['ok']} |")
    if syncs:
        print(f"host syncs per PGD step: {syncs['pgd_step']:g}, per bare "
              f"forward + input-gradient pass: {syncs['bare_pass']:g} "
              f"(added by the attack: {syncs['added_by_attack']:g})")
    if args.out:
        write_json(args.out, result)
    if not all(c['ok'] for c in checks):
        sys.exit(1)


if __name__ == '__main__':
    main()
