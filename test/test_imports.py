"""No import cycles in the package or in training/; the package never imports training/."""

import ast
import os
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'mono_depth_ros'


def module_names(package=PACKAGE):
    """Return {dotted module name: path} for every module of the package (or training/)."""
    found = {}
    for path in sorted(package.rglob('*.py')):
        parts = list(path.relative_to(REPO).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        found['.'.join(parts)] = path
    return found


def imports_of(path, name, modules):
    """Return the package modules (and top-level foreign names) a module imports anywhere."""
    package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f'{base}.{alias.name}'
                out.add(full if full in modules else base)
    return out


def import_graph(package=PACKAGE):
    modules = module_names(package)
    graph = {name: {m for m in imports_of(path, name, modules) if m in modules and m != name}
             for name, path in modules.items()}
    foreign = {name: {m.split('.')[0] for m in imports_of(path, name, modules)}
               for name, path in modules.items()}
    return graph, foreign


def find_cycle(graph):
    """Return one import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 'open':
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 'done'
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read_correctly():
    graph, _foreign = import_graph()
    # Known edges, module-level and lazy (inside functions) alike.
    assert 'mono_depth_ros.inference.tensorrt.cuda' in graph[
        'mono_depth_ros.inference.tensorrt.runner']
    assert 'mono_depth_ros.core.frame' in graph['mono_depth_ros.ros.depth_node']
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None


def test_no_import_cycles_and_no_training_import():
    graph, foreign = import_graph()
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))
    users = sorted(name for name, names in foreign.items() if 'training' in names)
    assert users == [], f'the installed package must not import training/: {users}'
    # Layers: core and sim import nothing above them (inference, ros, tools).
    for name, targets in graph.items():
        layer = name.split('.')[1] if '.' in name else ''
        if layer in ('core', 'sim'):
            above = [t for t in targets if t.split('.')[1] in ('inference', 'ros', 'tools')]
            assert not above, f'{name} imports {above}'


def test_training_has_no_import_cycles():
    # training/ is not installed, but a cycle there breaks as easily: whichever module of
    # the cycle is imported first decides what the others see half-initialised.
    graph, _foreign = import_graph(REPO / 'training')
    assert 'training.trainer' in graph and 'training.networks.mobilenetv2' in graph
    assert find_cycle(graph) is None, ' -> '.join(find_cycle(graph))


def test_every_module_imports_with_training_unimportable():
    names = sorted(module_names())
    code = (
        'import importlib, sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "training" or name.startswith("training."):\n'
        '            raise ImportError("training blocked")\n'
        'sys.meta_path.insert(0, Block())\n'
        f'for name in {names!r}:\n'
        '    importlib.import_module(name)\n'
        'assert not any(m == "training" or m.startswith("training.") for m in sys.modules)\n'
        'print("OK", len(sys.modules))\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, '-c', code], cwd='/', capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('OK')
