# The official clients of tests/clients.rs: the `openai` Python package in a
# venv under target/ (pinned in tests/clients/requirements.txt), and the
# `openai` and `ai` npm packages of tests/clients (ai@5.0.0 as `ai5`).
command -v npm >/dev/null || apt_install nodejs npm
command -v python3 >/dev/null || apt_install python3 python3-venv

venv=target/py-venv
venv_stamp=$venv/.ragstream-requirements-sha256
if [ ! -x "$venv/bin/python" ] \
  || [ "$(sha256sum <tests/clients/requirements.txt)" != "$(cat "$venv_stamp" 2>/dev/null)" ]; then
  echo "setup: python venv with tests/clients/requirements.txt in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
  sha256sum <tests/clients/requirements.txt >"$venv_stamp"
fi

clients_stamp=tests/clients/node_modules/.ragstream-lock-sha256
if [ ! -d tests/clients/node_modules/ai5 ] \
  || [ "$(sha256sum <tests/clients/package-lock.json)" != "$(cat "$clients_stamp" 2>/dev/null)" ]; then
  echo "setup: npm ci in tests/clients"
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <tests/clients/package-lock.json >"$clients_stamp"
fi
