"""The README's robustness tables are copies of reports in ``docs/``, not
numbers typed by hand: every row of a ``| model | clean | ...`` table must
equal, cell by cell (mAP@0.5 in %, one decimal), the ``mAP`` of one report
JSON that a run wrote there."""
import glob
import json
import os.path as osp
import re
from typing import Dict, Iterator, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
Row = Dict[str, str]


def report_rows(root: str = ROOT) -> List[Row]:
    """Every ``mAP`` entry of the report JSONs under ``docs/``, formatted
    as the reports' Markdown prints it (percent, one decimal); a report of
    several models (the demo's ``{model: {attack: mAP}}``) gives a row per
    model."""
    rows = []
    for path in glob.glob(osp.join(root, 'docs', '**', '*.json'),
                          recursive=True):
        with open(path) as f:
            report = json.load(f)
        table = report.get('mAP') if isinstance(report, dict) else None
        if not isinstance(table, dict):
            continue
        models = table.values() if all(
            isinstance(v, dict) for v in table.values()) else [table]
        for model in models:
            rows.append({attack: f'{100 * value:.1f}'
                         for attack, value in model.items()
                         if isinstance(value, (int, float))})
    return rows


def readme_rows(text: str) -> Iterator[Tuple[int, str, Row]]:
    """``(line number, model, {column: cell})`` of every data row of the
    README's tables headed ``| model | clean | ...``."""
    header = None
    for number, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if not line.startswith('|'):
            header = None
        elif cells[:2] == ['model', 'clean']:
            header = cells
        elif header and not set(line) <= set('|-: '):
            yield number, cells[0], dict(zip(header[1:], cells[1:]))


def test_readme_rows_parse_and_match_only_their_own_report():
    text = ('| model | clean | dag |\n|---|---|---|\n'
            '| STD | 87.6 | 23.8 |\n\n| model | x |\n| STD | 1 |\n')
    rows = list(readme_rows(text))
    assert rows == [(3, 'STD', {'clean': '87.6', 'dag': '23.8'})]
    reports = report_rows()
    assert rows[0][2] in [{k: r.get(k) for k in rows[0][2]}
                          for r in reports]
    changed = {'clean': '87.6', 'dag': '23.9'}  # one digit off
    assert changed not in [{k: r.get(k) for k in changed} for r in reports]


def test_every_readme_robustness_row_is_a_report_in_docs():
    with open(osp.join(ROOT, 'README.md')) as f:
        rows = list(readme_rows(f.read()))
    reports = report_rows()
    assert len(rows) >= 20 and len(reports) >= 20
    unmatched = [
        f'README.md:{number} {model} {cells}'
        for number, model, cells in rows
        if not any(all(r.get(k) == v for k, v in cells.items())
                   for r in reports)]
    assert not unmatched, 'rows found in no report under docs/:\n' + \
        '\n'.join(unmatched)
