"""The paper's architectures side by side: parameters, FLOPs, MTD cost.

    python benchmarks/arch_table.py --out docs/bench/arch_table.json

For each STD config of the architectures of Tables 3, 4 and 6 (random init,
the config's input size): parameters, FLOPs of one forward pass of one image
(mmengine's ``get_model_complexity_info``; multiply-adds counted once, as
MMDetection's ``get_flops.py`` reports them) and the median time of one MTD
training iteration (``AdvTrainingLoop``'s step: the attack, then the model's
``train_step``) at ``--batch`` on the machine it runs on. Prints a Markdown
table and writes JSON.
"""
import argparse
import sys
from types import SimpleNamespace

import torch
from mmengine.analysis import get_model_complexity_info

from bench_adv import Bench, input_size, timed, write_json
from mmdet_robust.tools.cli import nonnegative_int, positive_int

ARCHS = (
    ('SSD300', 'VGG16-BN', 'configs/ssd300_vgg16_std_voc.py'),
    ('SSD300', 'ResNet50', 'configs/ssd300_r50_std_voc.py'),
    ('SSD300', 'DarkNet53', 'configs/ssd300_d53_std_voc.py'),
    ('RFB-Net300', 'ResNet50', 'configs/rfb300_r50_std_voc.py'),
    ('FSSD300', 'DarkNet53', 'configs/fssd300_d53_std_voc.py'),
    ('YOLOv3-416', 'DarkNet53', 'configs/yolov3_d53_std_voc.py'),
)


def measure(config: str, batch: int, iters: int, warmup: int,
            cpu: bool) -> dict:
    size = input_size(config)
    bench = Bench(SimpleNamespace(config=config, batch=batch, size=size,
                                  iters=iters, warmup=warmup, cpu=cpu,
                                  amp=False, channels_last=False))
    model = bench.model
    params = sum(p.numel() for p in model.parameters())
    model.eval()
    flops = get_model_complexity_info(
        model, inputs=(torch.rand(1, 3, size, size, device=bench.device), ),
        show_table=False, show_arch=False)['flops']
    model.train()
    seconds = timed(bench.train_step('mtd'), iters, warmup, bench.device)
    return dict(config=config, input_size=size, params=params, flops=flops,
                mtd_s_per_iter=seconds, batch=batch,
                device=str(bench.device))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batch', type=positive_int, default=2)
    parser.add_argument('--iters', type=positive_int, default=2)
    parser.add_argument('--warmup', type=nonnegative_int, default=1)
    parser.add_argument('--cpu', action='store_true')
    parser.add_argument('--only', nargs='*', help='config paths to keep')
    parser.add_argument('--out', default=None, help='JSON file')
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows = []
    for arch, backbone, config in ARCHS:
        if args.only and config not in args.only:
            continue
        row = dict(arch=arch, backbone=backbone,
                   **measure(config, args.batch, args.iters, args.warmup,
                             args.cpu))
        rows.append(row)
        print(f'{arch} {backbone}: {row["params"] / 1e6:.1f} M params, '
              f'{row["flops"] / 1e9:.1f} GFLOPs, MTD '
              f'{row["mtd_s_per_iter"]:.2f} s/iter', flush=True)
    device = rows[0]['device'] if rows else '-'
    print(f'\n| architecture | backbone | input | params (M) | GFLOPs | '
          f'MTD s/iter, batch {args.batch}, {device} |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["arch"]} | {r["backbone"]} | {r["input_size"]} | '
              f'{r["params"] / 1e6:.1f} | {r["flops"] / 1e9:.1f} | '
              f'{r["mtd_s_per_iter"]:.2f} |')
    if args.out:
        write_json(args.out, dict(rows=rows,
                                  command=' '.join(['python'] + sys.argv)))


if __name__ == '__main__':
    main()
