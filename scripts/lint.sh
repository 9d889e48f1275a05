#!/usr/bin/env bash
# Lint the given files (or the whole project) with the ament_flake8 and ament_pep257 settings.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
CFG=$($PY -c 'import ament_flake8, os; print(os.path.join(os.path.dirname(ament_flake8.__file__), "configuration", "ament_flake8.ini"))')
files=("$@")
[ ${#files[@]} -eq 0 ] && files=(mono_depth_ros training test scripts launch setup.py)
$PY -m flake8 --config "$CFG" "${files[@]}"; a=$?
$PY -c 'import sys; from ament_pep257.main import main; sys.exit(main(sys.argv[1:]))' "${files[@]}" 2>&1 | grep -v -E '^(INFO|No problems|checking)' ; b=${PIPESTATUS[0]}
exit $(( a || b ))
