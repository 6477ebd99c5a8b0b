"""Count the rhythm of nbdev chapters: markdown cells, export cells, and export cells followed directly by a
test or example cell (a code cell that exports nothing and does more than import).

    python benchmarks/notebook_rhythm.py nbs/*.ipynb
"""

import ast
import json
import sys
from pathlib import Path


def directives(source: str) -> list[str]:
    "The nbdev directives (`#| export`, `#| hide`, ...) at the top of a cell's source."
    found = []
    for line in source.splitlines():
        if not line.startswith('#|'):
            break
        found.append(line[2:].strip().split()[0] if line[2:].strip() else '')
    return found


def is_export(cell: dict) -> bool:
    "Whether the cell is code that nbdev exports into the module."
    if cell['cell_type'] != 'code':
        return False
    return any(d in ('export', 'exports', 'exporti') for d in directives(''.join(cell['source'])))


def is_example(cell: dict) -> bool:
    "Whether the cell is code that runs something: not exported, not a directive or an import alone."
    if cell['cell_type'] != 'code' or is_export(cell):
        return False
    source = ''.join(cell['source'])
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return True  # IPython magics and the like still run something
    return any(not isinstance(node, (ast.Import, ast.ImportFrom)) for node in body)


def rhythm(path) -> dict:
    "Per-notebook counts: markdown cells, export cells, export cells directly followed by a test or example."
    cells = json.loads(Path(path).read_text())['cells']
    exports = [i for i, c in enumerate(cells) if is_export(c)]
    followed = [i for i in exports if i + 1 < len(cells) and is_example(cells[i + 1])]
    words = sum(len(''.join(c['source']).split()) for c in cells if c['cell_type'] == 'markdown')
    return {
        'notebook': Path(path).name,
        'markdown': sum(c['cell_type'] == 'markdown' for c in cells),
        'prose words': words,
        'export': len(exports),
        'export + test': len(followed),
    }


def main(paths: list[str]) -> None:
    rows = [rhythm(p) for p in paths]
    columns = list(rows[0]) if rows else []
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print('  '.join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print('  '.join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))


if __name__ == '__main__':
    main(sys.argv[1:])
