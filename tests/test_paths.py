"""Writable-path checks: the one-line reasons, and nothing created on refusal."""

import os

import pytest

from mer_jax import paths
from tests.drills.table import read_only


def test_writable_dir_creates_the_folder_and_refuses_files(tmp_path):
  new = tmp_path / 'a' / 'b'
  paths.writable_dir(str(new), 'the workdir')
  assert new.is_dir() and not list(new.iterdir())  # The probe file is gone.
  f = tmp_path / 'file'
  f.write_text('x')
  with pytest.raises(ValueError, match=f'^{f}: is a file, not a folder \\(the workdir\\)$'):
    paths.writable_dir(str(f), 'the workdir')
  with pytest.raises(ValueError, match=f'^{f}/sub/dir: lies under {f}, a file, not a '
                     'folder'):
    paths.writable_dir(str(f / 'sub' / 'dir'), 'the workdir')


def test_read_only_folders_are_refused_before_anything_is_written(tmp_path):
  ro = tmp_path / 'ro'
  ro.mkdir()
  with read_only(str(ro)) as effective:
    if not effective:
      pytest.skip('writes succeed in a read-only folder for this user (root, no chattr)')
    with pytest.raises(ValueError, match=f'^{ro}: cannot write in this folder \\(the '
                       'workdir\\): '):
      paths.writable_dir(str(ro), 'the workdir')
    with pytest.raises(ValueError, match=f'^{ro}/sub: cannot write in this folder'):
      paths.writable_dir(str(ro / 'sub'), 'the workdir')
    with pytest.raises(ValueError, match=f'^{ro}: cannot write in this folder \\(the '
                       'folder of --out\\)'):
      paths.writable_file(str(ro / 'p.csv'), '--out')
  assert not list(ro.iterdir())


def test_writable_file_checks_without_creating_it(tmp_path):
  out = tmp_path / 'new' / 'p.csv'
  paths.writable_file(str(out), '--out')
  assert out.parent.is_dir() and not out.exists()
  with pytest.raises(ValueError, match=f'^{tmp_path}: is a folder, not a file \\(--out\\)$'):
    paths.writable_file(str(tmp_path), '--out')
  f = tmp_path / 'file'
  f.write_text('x')
  with pytest.raises(ValueError, match=f'^{f}/p.csv: lies under {f}, a file, not a folder '
                     '\\(--out\\)$'):
    paths.writable_file(str(f / 'p.csv'), '--out')
  os.chmod(f, 0o444)
  if not os.access(f, os.W_OK):  # Not as root: the bits do not bind it.
    with pytest.raises(ValueError, match='cannot write this file'):
      paths.writable_file(str(f), '--out')
