"""Imports go one way: no import cycle among the project's modules (counting imports
inside functions too), and the library (mer_jax, data_prep) never imports configs/."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ('mer_jax', 'data_prep')


def _modules() -> dict[str, str]:
  """module name -> file of every module of PACKAGES and configs."""
  out = {}
  for pkg in PACKAGES + ('configs',):
    for folder, _, files in os.walk(os.path.join(REPO, pkg)):
      for f in files:
        if f.endswith('.py'):
          rel = os.path.relpath(os.path.join(folder, f), REPO)[:-3].split(os.sep)
          if rel[-1] == '__init__':
            rel = rel[:-1]
          out['.'.join(rel)] = os.path.join(folder, f)
  return out


def _imports(path: str, known: set[str]) -> set[str]:
  """The project modules a file imports, anywhere in it."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [f'{node.module}.{a.name}' for a in node.names] + [node.module]
    for n in names:
      while n and n not in known:  # `from pkg import name`: the module, else pkg.
        n = n.rpartition('.')[0]
      if n:
        out.add(n)
  return out


def _graph() -> dict[str, set[str]]:
  mods = _modules()
  return {m: _imports(p, set(mods)) - {m} for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of `graph`, or None (depth-first search)."""
  state, stack = {}, []

  def visit(m):
    state[m] = 'open'
    stack.append(m)
    for n in sorted(graph.get(m, ())):
      if state.get(n) == 'open':
        return stack[stack.index(n):] + [n]
      if n not in state:
        found = visit(n)
        if found:
          return found
    stack.pop()
    state[m] = 'done'
    return None

  for m in sorted(graph):
    if m not in state:
      found = visit(m)
      if found:
        return found
  return None


def test_no_import_cycles():
  graph = _graph()
  assert len(graph) > 40  # The walk found the package.
  assert _cycle(graph) is None, ' -> '.join(_cycle(graph))


def test_library_never_imports_configs():
  bad = {m: sorted(n for n in deps if n.split('.')[0] == 'configs')
         for m, deps in _graph().items() if m.split('.')[0] in PACKAGES}
  assert not {m: d for m, d in bad.items() if d}


@pytest.mark.parametrize('graph,cycle', [
    ({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}, ['a', 'b', 'c', 'a']),
    ({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}, None),
])
def test_the_cycle_finder_finds_cycles(graph, cycle):
  assert _cycle(graph) == cycle
