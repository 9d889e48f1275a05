#!/usr/bin/env python3
"""
Lay the shared real RGB-D samples out as folder datasets, split by scene, without copying.

The samples live outside the repository; this writes symbolic links (and tiny intrinsics
files) under an ignored folder (default ``runs/real``), in the ``rgb/`` + ``depth/``
layout that ``training/evaluate.py`` and the ``folder`` dataset read:

* ``nyu_train``: NYU labeled indices 3-7 (two scenes: an office, 3-4; a classroom, 5-7);
  the only real images that recipe B fine-tunes on;
* ``nyu_test``: NYU indices 8, 10-13 (three other scenes: an office with a green wall, 8; a
  copy room, 10-12; an office, 13), never trained on;
* ``redwood``: the five Redwood frames (one scene, never trained on);
* ``tum``: the TUM fr1 frame (never trained on);
* ``sevenscenes``: every 20th frame of the 7-Scenes redkitchen sequence (10 frames, a
  kitchen never trained on); its depth is not registered to the colour image, so edges
  are off by 10-25 px and per-pixel figures there are pessimistic for every model;
* ``nyu_all``: all ten NYU pairs, for comparison with figures measured on the whole set;
* ``nyu_fit`` (indices 5-7) and ``nyu_val`` (3-4): the training scenes split once more, to
  choose recipe B's fine-tuning length and rate without looking at the test split.

All NYU pairs are from NYU's official train split (the only ones shared here); the split
above is by scene so that nothing of a test scene is seen in training.

    python scripts/data/real_split.py [--data ../shared/data] [--out runs/real]
"""

import argparse
import json
import os
import sys

NYU_TRAIN = ('0003', '0004', '0005', '0006', '0007')
NYU_TEST = ('0008', '0010', '0011', '0012', '0013')
NYU_FIT, NYU_VAL = ('0005', '0006', '0007'), ('0003', '0004')
TUM_CAMERA = {'fx': 517.3, 'fy': 516.5, 'cx': 318.6, 'cy': 255.3, 'width': 640, 'height': 480}
SEVENSCENES_CAMERA = {'fx': 585.0, 'fy': 585.0, 'cx': 320.0, 'cy': 240.0, 'width': 640,
                      'height': 480}
SEVENSCENES_FRAMES = tuple(range(0, 200, 20))


def _link(src: str, dst: str) -> None:
    if not os.path.exists(src):
        raise FileNotFoundError(src)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        os.remove(dst)
    os.symlink(os.path.abspath(src), dst)


def build(data: str, out: str) -> dict:
    """Write the split folders; return {name: folder}."""
    nyu = os.path.join(data, 'nyu')
    folders = {}
    for name, stems in (('nyu_train', NYU_TRAIN), ('nyu_test', NYU_TEST),
                        ('nyu_all', NYU_TRAIN + NYU_TEST), ('nyu_fit', NYU_FIT),
                        ('nyu_val', NYU_VAL)):
        root = os.path.join(out, name)
        for stem in stems:
            for sub in ('rgb', 'depth'):
                _link(os.path.join(nyu, sub, f'{stem}.png'),
                      os.path.join(root, sub, f'{stem}.png'))
        folders[name] = root
    red = os.path.join(data, 'redwood')
    root = os.path.join(out, 'redwood')
    for name in sorted(os.listdir(os.path.join(red, 'color'))):
        stem = os.path.splitext(name)[0]
        _link(os.path.join(red, 'color', name), os.path.join(root, 'rgb', name))
        _link(os.path.join(red, 'depth', f'{stem}.png'),
              os.path.join(root, 'depth', f'{stem}.png'))
    _link(os.path.join(red, 'camera_primesense.json'), os.path.join(root, 'camera.json'))
    folders['redwood'] = root
    root = os.path.join(out, 'tum')
    _link(os.path.join(data, 'tum', 'TUM_color.png'), os.path.join(root, 'rgb', 'tum.png'))
    _link(os.path.join(data, 'tum', 'TUM_depth.png'), os.path.join(root, 'depth', 'tum.png'))
    with open(os.path.join(root, 'camera.json'), 'w', encoding='utf-8') as handle:
        json.dump(TUM_CAMERA, handle)
    folders['tum'] = root
    seven = os.path.join(data, 'sevenscenes_redkitchen')
    if os.path.isdir(seven):
        root = os.path.join(out, 'sevenscenes')
        for i in SEVENSCENES_FRAMES:
            _link(os.path.join(seven, f'frame-{i:06d}.color.jpg'),
                  os.path.join(root, 'rgb', f'{i:06d}.jpg'))
            _link(os.path.join(seven, f'frame-{i:06d}.depth.png'),
                  os.path.join(root, 'depth', f'{i:06d}.png'))
        with open(os.path.join(root, 'camera.json'), 'w', encoding='utf-8') as handle:
            json.dump(SEVENSCENES_CAMERA, handle)
        folders['sevenscenes'] = root
    return folders


def main(argv=None) -> int:
    """Parse arguments and build the folders."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--data', default=os.path.join(here, '..', 'shared', 'data'))
    parser.add_argument('--out', default=os.path.join(here, 'runs', 'real'))
    args = parser.parse_args(argv)
    for name, folder in build(args.data, args.out).items():
        sys.stdout.write(f'{name}: {folder}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
