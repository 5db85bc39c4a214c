"""Synthetic VOC-format detection data: shapes on cluttered backgrounds.

Writes ``<out>/VOCdevkit/VOC2007/{JPEGImages,Annotations,ImageSets/Main}``
so that MMDetection's own ``VOCDataset`` reads it (class names passed through
``metainfo=dict(classes=SHAPES_CLASSES)``) and ``VOCMetric`` scores it. The
classes differ in form only: every object gets a random colour, size, aspect
ratio and position, and the background is a random gradient with noise and
distractor strokes, so colour alone does not tell the class. Gaussian pixel
noise over the finished image (``noise``, std in pixel levels) makes the
shapes' evidence local and noisy, as in natural images: a model trained on
clean-edged shapes alone barely notices an eps = 8 perturbation.

    python -m mmdet_robust.datasets.make_shapes --out data/shapes

The output is a pure function of the arguments (``--seed`` included); a tree
already generated with the same arguments is left as it is.
"""
import argparse
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image, ImageDraw

SHAPES_CLASSES = ('circle', 'square', 'triangle', 'cross')
STAMP = 'make_shapes.json'
# the embedded default: noisy enough that standard training learns fragile
# features (the demo's STD model), clean enough that MTD still learns shapes
DEFAULT_NOISE = 16.
# a faint grating per class inside each object: a predictive feature that an
# eps = 8 perturbation can erase or swap, as natural images offer them
DEFAULT_TEXTURE = 0.
TEXTURE_PERIOD = 6.  # pixels
# how far each object's 2-px outline goes from its fill colour towards black
# (bright fills) or white (dark fills): 1 = a black/white outline. A quarter
# of the way is the embedded default: a black/white outline is evidence an
# eps = 8 perturbation barely moves (the standard model kept 34% of clean mAP
# under cls-PGD-20 with it); at 0.25 it keeps 5%
DEFAULT_OUTLINE_CONTRAST = .25

Box = Tuple[int, int, int, int]  # x1, y1, x2, y2, pixel indices, inclusive


def _iou(a: Box, b: Box) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.
    inter = iw * ih
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """Gradient between two random colours, pixel noise, distractor strokes."""
    c0, c1 = rng.uniform(0, 255, (2, 3))
    t = np.linspace(0, 1, size)[None, :, None]
    if rng.random() < 0.5:
        t = t.transpose(1, 0, 2)
    img = c0 * (1 - t) + c1 * t + rng.normal(0, 12, (size, size, 3))
    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.integers(4, 10)):  # lines and small arcs, no objects
        x0, y0 = rng.integers(0, size, 2)
        dx, dy = rng.integers(-size // 3, size // 3, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.6:
            draw.line([(x0, y0), (x0 + dx, y0 + dy)], fill=colour,
                      width=int(rng.integers(1, 3)))
        else:
            r = int(rng.integers(3, 8))
            draw.arc([x0 - r, y0 - r, x0 + r, y0 + r],
                     int(rng.integers(0, 180)), int(rng.integers(180, 360)),
                     fill=colour, width=1)
    return canvas


def _draw_shape(draw: ImageDraw.ImageDraw, cls: str, box: Box,
                fill: tuple, outline: tuple) -> None:
    x1, y1, x2, y2 = box
    if cls == 'circle':
        draw.ellipse(box, fill=fill, outline=outline, width=2)
    elif cls == 'square':
        draw.rectangle(box, fill=fill, outline=outline, width=2)
    elif cls == 'triangle':
        draw.polygon([(x1, y2), (x2, y2), ((x1 + x2) / 2, y1)], fill=fill,
                     outline=outline, width=2)
    elif cls == 'cross':
        tx, ty = (x2 - x1) / 3, (y2 - y1) / 3
        draw.polygon([(x1 + tx, y1), (x2 - tx, y1), (x2 - tx, y1 + ty),
                      (x2, y1 + ty), (x2, y2 - ty), (x2 - tx, y2 - ty),
                      (x2 - tx, y2), (x1 + tx, y2), (x1 + tx, y2 - ty),
                      (x1, y2 - ty), (x1, y1 + ty), (x1 + tx, y1 + ty)],
                     fill=fill, outline=outline, width=2)
    else:
        raise ValueError(f'unknown shape class {cls!r}')


def object_mask(cls: str, box: Box, size: int) -> np.ndarray:
    """``(size, size)`` bool: the pixels the shape covers, outline
    included."""
    mask = Image.new('L', (size, size), 0)
    _draw_shape(ImageDraw.Draw(mask), cls, box, 255, 255)
    return np.asarray(mask) > 0


def _grating(rng: np.random.Generator, size: int, cls: str,
             amplitude: float) -> np.ndarray:
    """``(size, size)`` sinusoid of the class's orientation (0, 45, 90 or
    135 degrees), period TEXTURE_PERIOD pixels, random phase."""
    theta = np.pi / 4 * SHAPES_CLASSES.index(cls)
    y, x = np.mgrid[:size, :size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi)
    return amplitude * np.sin(2 * np.pi / TEXTURE_PERIOD *
                              (x * np.cos(theta) + y * np.sin(theta)) +
                              phase)


def make_image(rng: np.random.Generator, size: int, min_obj: int,
               max_obj: int, empty_prob: float, noise: float = 0.,
               texture: float = 0.,
               outline_contrast: float = DEFAULT_OUTLINE_CONTRAST
               ) -> Tuple[Image.Image, List[Tuple[str, Box]]]:
    """One image and its objects ``[(class, (x1, y1, x2, y2)), ...]``;
    ``noise``: std of the Gaussian pixel noise added to the finished image;
    ``texture``: amplitude of the faint class-specific grating inside each
    object (both in pixel levels of [0, 255]); ``outline_contrast``: the
    outline's colour as a fraction of the way from the fill to black/white.
    """
    canvas = _background(rng, size)
    draw = ImageDraw.Draw(canvas)
    objects: List[Tuple[str, Box]] = []
    textured = np.zeros((size, size), np.float32)
    num = 0 if rng.random() < empty_prob else rng.integers(
        min_obj, max_obj + 1)
    for _ in range(num):
        for _try in range(50):
            side = rng.uniform(0.14, 0.45) * size
            aspect = rng.uniform(0.75, 1.33)
            w = int(min(size - 1, side * np.sqrt(aspect)))
            h = int(min(size - 1, side / np.sqrt(aspect)))
            x1 = int(rng.integers(0, size - w))
            y1 = int(rng.integers(0, size - h))
            box = (x1, y1, x1 + w, y1 + h)
            if all(_iou(box, b) < 0.15 for _, b in objects):
                break
        else:
            continue
        cls = SHAPES_CLASSES[rng.integers(len(SHAPES_CLASSES))]
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        extreme = 0 if sum(fill) > 380 else 255
        outline = tuple(int(round(c + outline_contrast * (extreme - c)))
                        for c in fill)
        _draw_shape(draw, cls, box, fill, outline)
        objects.append((cls, box))
        if texture > 0:
            inside = object_mask(cls, box, size)
            textured[inside] = _grating(rng, size, cls, texture)[inside]
    if noise > 0 or texture > 0:
        img = np.asarray(canvas, np.float32) + textured[..., None]
        if noise > 0:
            img += rng.normal(0, noise, (size, size, 3))
        canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return canvas, objects


def _annotation_xml(name: str, size: int, objects: Sequence[Tuple[str, Box]],
                    class_names: dict) -> ET.ElementTree:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2007'
    ET.SubElement(root, 'filename').text = f'{name}.jpg'
    size_el = ET.SubElement(root, 'size')
    for key, val in (('width', size), ('height', size), ('depth', 3)):
        ET.SubElement(size_el, key).text = str(val)
    for cls, (x1, y1, x2, y2) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = class_names[cls]
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        bnd = ET.SubElement(obj, 'bndbox')
        # VOC coordinates are 1-based; VOCDataset subtracts 1 on reading.
        for key, val in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                            (x1 + 1, y1 + 1, x2 + 1, y2 + 1)):
            ET.SubElement(bnd, key).text = str(val)
    return ET.ElementTree(root)


def _check_arguments(num_train: int, num_test: int, size: int,
                     min_obj: int, max_obj: int, empty_prob: float,
                     noise: float, texture: float, outline_contrast: float,
                     class_names: Sequence[str]) -> None:
    """Refuse arguments :func:`make_shapes` cannot honour, naming them."""
    if min(num_train, num_test) < 0 or num_train + num_test == 0:
        raise ValueError(f'need num_train, num_test >= 0 and at least one '
                         f'image, got {num_train}, {num_test}')
    if not 0 <= empty_prob <= 1:
        raise ValueError(f'empty_prob must be a probability in [0, 1], got '
                         f'{empty_prob!r}')
    if not 1 <= min_obj <= max_obj:
        raise ValueError(f'need 1 <= min_obj <= max_obj, got {min_obj}, '
                         f'{max_obj}')
    if not 0 <= noise <= 64:
        raise ValueError(f'noise must be a std in [0, 64] pixel levels, got '
                         f'{noise!r}')
    if not 0 <= texture <= 32:
        raise ValueError(f'texture must be an amplitude in [0, 32] pixel '
                         f'levels, got {texture!r}')
    if not 0 <= outline_contrast <= 1:
        raise ValueError(f'outline_contrast must be in [0, 1], got '
                         f'{outline_contrast!r}')
    if size < 32:
        raise ValueError(f'image size must be >= 32 pixels, got {size}')
    if len(class_names) != len(SHAPES_CLASSES):
        raise ValueError(f'class_names needs {len(SHAPES_CLASSES)} names '
                         f'(for {SHAPES_CLASSES}), got {class_names}')


def stamp_path(out: str) -> str:
    """The file that records the arguments a tree under ``out`` was
    generated with (rewritten whenever the tree is)."""
    return osp.join(out, 'VOCdevkit', STAMP)


def make_shapes(out: str, num_train: int = 500, num_test: int = 100,
                size: int = 128, seed: int = 0, min_obj: int = 1,
                max_obj: int = 4, empty_prob: float = 0.0,
                class_names: Optional[Sequence[str]] = None,
                noise: float = DEFAULT_NOISE,
                texture: float = DEFAULT_TEXTURE,
                outline_contrast: float = DEFAULT_OUTLINE_CONTRAST,
                force: bool = False) -> str:
    """Generate the dataset; return the ``VOCdevkit`` directory.

    ``noise`` is the std of Gaussian pixel noise over each finished image
    (pixel levels; 0 for clean-edged shapes). ``outline_contrast`` in
    [0, 1] sets each outline's colour from the fill's (0: no outline) to
    black/white (1).
    ``class_names`` renames the four shape kinds in the annotations (e.g.
    four of VOC's 20 names, so that a real VOC config reads the tree).

    Image ``i`` is drawn from ``np.random.default_rng([seed, i])``, so the
    output is deterministic for a seed and independent of the split sizes'
    order of generation.
    """
    class_names = list(class_names or SHAPES_CLASSES)
    _check_arguments(num_train, num_test, size, min_obj, max_obj,
                     empty_prob, noise, texture, outline_contrast,
                     class_names)
    params = dict(num_train=num_train, num_test=num_test, size=size,
                  seed=seed, min_obj=min_obj, max_obj=max_obj,
                  empty_prob=empty_prob, classes=class_names, noise=noise)
    if texture:  # stamps of untextured trees stay as they were
        params['texture'] = texture
    if outline_contrast != 1.:  # likewise for black/white outlines
        params['outline_contrast'] = outline_contrast
    stamp = stamp_path(out)
    devkit = osp.dirname(stamp)
    voc = osp.join(devkit, 'VOC2007')
    if not force and osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == params:
                return devkit
    for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
        os.makedirs(osp.join(voc, sub), exist_ok=True)
    names = []
    for i in range(num_train + num_test):
        rng = np.random.default_rng([seed, i])
        image, objects = make_image(rng, size, min_obj, max_obj, empty_prob,
                                    noise, texture, outline_contrast)
        name = f'{i:06d}'
        image.save(osp.join(voc, 'JPEGImages', f'{name}.jpg'), quality=95)
        _annotation_xml(name, size, objects,
                        dict(zip(SHAPES_CLASSES, class_names))).write(
            osp.join(voc, 'Annotations', f'{name}.xml'))
        names.append(name)
    for split, ids in (('trainval', names[:num_train]),
                       ('test', names[num_train:])):
        with open(osp.join(voc, 'ImageSets/Main', f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{n}\n' for n in ids))
    with open(stamp, 'w') as f:
        json.dump(params, f)
    return devkit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='data/shapes',
                        help='root; VOCdevkit/ is written inside it')
    parser.add_argument('--num-train', type=int, default=500)
    parser.add_argument('--num-test', type=int, default=100)
    parser.add_argument('--size', type=int, default=128,
                        help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--min-obj', type=int, default=1)
    parser.add_argument('--max-obj', type=int, default=4)
    parser.add_argument('--empty-prob', type=float, default=0.0,
                        help='probability that an image has no object')
    parser.add_argument('--class-names', nargs=4, metavar='NAME',
                        help='names written for circle, square, triangle, '
                        'cross (e.g. four VOC classes)')
    parser.add_argument('--noise', type=float, default=DEFAULT_NOISE,
                        help='std of Gaussian pixel noise over each image '
                        '(pixel levels; 0: clean-edged shapes)')
    parser.add_argument('--texture', type=float, default=DEFAULT_TEXTURE,
                        help='amplitude of the class-specific grating inside '
                        'each object (pixel levels; 0: none)')
    parser.add_argument('--outline-contrast', type=float,
                        default=DEFAULT_OUTLINE_CONTRAST,
                        help='outline colour from the fill (0) to black/'
                        'white (1)')
    parser.add_argument('--force', action='store_true',
                        help='regenerate even if the tree is up to date')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # make_shapes checks them too, but a usage error reads better
        _check_arguments(args.num_train, args.num_test, args.size,
                         args.min_obj, args.max_obj, args.empty_prob,
                         args.noise, args.texture, args.outline_contrast,
                         list(args.class_names or SHAPES_CLASSES))
    except ValueError as err:
        parser.error(str(err))
    devkit = make_shapes(args.out, args.num_train, args.num_test, args.size,
                         args.seed, args.min_obj, args.max_obj,
                         args.empty_prob, args.class_names, args.noise,
                         args.texture, args.outline_contrast, args.force)
    print(f'synthetic VOC tree ready: {devkit} '
          f'({args.num_train} trainval, {args.num_test} test, '
          f'classes {tuple(args.class_names or SHAPES_CLASSES)})')


if __name__ == '__main__':
    main()
