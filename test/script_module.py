"""Load a file of scripts/ as a module, for tests of the command-line scripts."""

import importlib.util
import os

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'scripts')


def load_script(name: str):
    """Import ``scripts/<name>.py`` (scripts/ is not a package) and return the module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(SCRIPTS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
