"""The README's robustness tables are copies of reports in ``docs/``, not
numbers typed by hand: every row of a table with a ``clean`` column must
equal, cell by cell (mAP@0.5 in %, one decimal), the mAP of one report
that a run wrote there (its JSON, or its Markdown table where only that
was kept, as for the transfer attacks)."""
import glob
import json
import os.path as osp
from typing import Dict, Iterator, List, Tuple

from conftest import REPO

Row = Dict[str, str]


def column(name: str) -> str:
    """An attack's name as the reports spell it: ``cls-PGD`` is
    ``cls_pgd``, a transferred ``transfer_dag`` is ``dag``."""
    name = name.lower().replace('-', '_')
    return name[len('transfer_'):] if name.startswith('transfer_') else name


def markdown_rows(text: str) -> Iterator[Row]:
    """The ``| attack | <metric>/mAP | ...`` tables that
    ``RobustnessReport.to_markdown`` writes, one row per table."""
    row = None
    for line in text.splitlines() + ['']:
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if row is not None and not line.startswith('|'):
            yield row
            row = None
        elif len(cells) > 1 and cells[0] == 'attack' and \
                cells[1].endswith('mAP'):
            row = {}
        elif row is not None and not set(line) <= set('|-: '):
            row[column(cells[0])] = cells[1]


def report_rows(root: str = REPO) -> List[Row]:
    """Every ``mAP`` entry of the report JSONs under ``docs/``, formatted
    as the reports' Markdown prints it (percent, one decimal), and every
    report table of the Markdown files there; a report of several models
    (the demo's ``{model: {attack: mAP}}``) gives a row per model."""
    rows = []
    for path in glob.glob(osp.join(root, 'docs', '**', '*.md'),
                          recursive=True):
        with open(path) as f:
            rows.extend(markdown_rows(f.read()))
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
    """``(line number, label, {column: cell})`` of every data row of the
    README's tables whose header has a ``clean`` column; the label is
    what stands left of it (the model, or source and target)."""
    header, in_table = None, False
    for number, line in enumerate(text.splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        starts, in_table = not in_table, line.startswith('|')
        if not in_table:
            header = None
        elif starts and 'clean' in cells:
            first = cells.index('clean')
            header = first, [column(c) for c in cells[first:]]
        elif header and not set(line) <= set('|-: '):
            first, names = header
            yield (number, ' / '.join(cells[:first]),
                   dict(zip(names, cells[first:])))


def test_readme_rows_parse_and_match_only_their_own_report():
    text = ('| model | clean | DAG |\n|---|---|---|\n'
            '| STD | 87.6 | 23.8 |\n\n| model | x |\n| clean | 1 |\n')
    rows = list(readme_rows(text))
    assert rows == [(3, 'STD', {'clean': '87.6', 'dag': '23.8'})]
    report = ('| attack | pascal_voc/mAP | % of clean |\n|---|---|---|\n'
              '| clean | 86.8 | 100.0 |\n| transfer_cls_pgd | 80.0 | 92.1 |'
              '\n\n| model | cls_pgd |\n| MTD | 1.0 |\n')
    assert list(markdown_rows(report)) == [
        {'clean': '86.8', 'cls_pgd': '80.0'}]
    reports = report_rows()
    assert rows[0][2] in [{k: r.get(k) for k in rows[0][2]}
                          for r in reports]
    changed = {'clean': '87.6', 'dag': '23.9'}  # one digit off
    assert changed not in [{k: r.get(k) for k in changed} for r in reports]


def test_every_readme_robustness_row_is_a_report_in_docs():
    with open(osp.join(REPO, 'README.md')) as f:
        rows = list(readme_rows(f.read()))
    reports = report_rows()
    assert len(rows) >= 20 and len(reports) >= 20
    unmatched = [
        f'README.md:{number} {label} {cells}'
        for number, label, cells in rows
        if not any(all(r.get(k) == v for k, v in cells.items())
                   for r in reports)]
    assert not unmatched, 'rows found in no report under docs/:\n' + \
        '\n'.join(unmatched)
