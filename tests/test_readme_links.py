"""The README and ``docs/*.md`` point at things that exist: every Markdown
link (a file relative to the page, or a ``#section`` of the README) and
every repository path quoted in backticks (``docs/...``, ``configs/...``,
``mmdet_robust/...``, ``tests/...``; ``{a,b}`` and ``*`` expanded)."""
import glob
import os.path as osp
import re
from typing import List

import pytest

from conftest import REPO

PAGES = ['README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))
QUOTED_PATH = re.compile(
    r'`((?:docs|configs|mmdet_robust|tests|requirements|\.ci)/[^`\s]*)`')
LINK = re.compile(r'\]\(([^)\s]+)\)')


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (shell sessions, logs)."""
    return re.sub(r'^```.*?^```', '', text, flags=re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped,
    spaces as dashes."""
    return re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')


def expand(pattern: str) -> List[str]:
    """``a/{b,c}.py`` -> ``['a/b.py', 'a/c.py']`` (unnested braces)."""
    match = re.search(r'\{([^{}]*)\}', pattern)
    if match is None:
        return [pattern]
    return [path for alt in match.group(1).split(',') for path in expand(
        pattern[:match.start()] + alt + pattern[match.end():])]


def test_anchor_follows_github():
    assert anchor("The paper's architectures (Tables 3, 4 and 6)") == \
        'the-papers-architectures-tables-3-4-and-6'
    assert anchor('What `make demo` shows (on 2-core CPUs)') == \
        'what-make-demo-shows-on-2-core-cpus'
    assert expand('a/{b,c}_{1,2}.py') == ['a/b_1.py', 'a/b_2.py',
                                          'a/c_1.py', 'a/c_2.py']


@pytest.mark.parametrize('page', PAGES)
def test_every_link_and_quoted_path_exists(page):
    text = prose(open(osp.join(REPO, page)).read())
    sections = {anchor(h) for h in re.findall(r'^#+ (.*)$', text, re.M)}
    missing = []
    for target in LINK.findall(text):
        if target.startswith(('http://', 'https://')):
            continue
        if target.startswith('#'):
            if target[1:] not in sections:
                missing.append(target)
        elif not osp.exists(osp.join(REPO, osp.dirname(page), target)):
            missing.append(target)
    for quoted in QUOTED_PATH.findall(text):
        for path in expand(quoted.rstrip('.,:;')):
            if not glob.glob(osp.join(REPO, path)):
                missing.append(path)
    assert not missing, f'{page} points at what does not exist: {missing}'
