"""Every notebook runs top to bottom (nbclient) on the tiny Exp 3 runs: a notebook that
breaks fails CI."""

import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, 'notebooks', '*.ipynb')))


def test_the_three_notebooks_exist():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      '01_dataset.ipynb', '02_results.ipynb', '03_congruence.ipynb']


@pytest.mark.parametrize('path', NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, exp3_run, monkeypatch):
  _, workdir, _ = exp3_run
  # The kernel inherits the environment: point the notebooks at the tiny runs.
  monkeypatch.setenv('MER_WORKDIR', os.path.join(workdir, 'exp1'))
  monkeypatch.setenv('MER_EXP3_WORKDIR', workdir)
  monkeypatch.setenv('MPLBACKEND', 'Agg')
  book = nbformat.read(path, as_version=4)
  NotebookClient(book, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': REPO}}).execute()
  outputs = [o for c in book.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
  assert not [o for o in outputs if o.output_type == 'error']
  assert any(o.output_type in ('display_data', 'execute_result') for o in outputs)
