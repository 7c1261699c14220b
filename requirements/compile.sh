#!/usr/bin/env sh
# Regenerate the hashed lock files the client images install from (pip install --require-hashes).
# Needs uv (pip install uv). Run from anywhere; writes requirements/client-web.txt and client-bot.txt.
# The inputs are pyproject.toml's base dependencies plus one extra: never the server or train extras,
# so TensorFlow can never reach a client image (tests/deploy checks it).
set -eu
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
command -v "$UV" >/dev/null 2>&1 || UV=.venv/bin/uv
for extra in web bot; do
  "$UV" pip compile pyproject.toml --extra "$extra" --universal --python-version 3.11 \
    --generate-hashes --quiet --custom-compile-command "requirements/compile.sh" \
    -o "requirements/client-$extra.txt"
done
