#!/usr/bin/env bash
# Make an example "remote" repository with a backlog, for `backlogctl run` to work on.
# Usage: make-example-repo.sh DIR   (DIR is made anew; it must be one this script made before)
set -euo pipefail
dir=${1:?usage: make-example-repo.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)

if [ -e "$dir" ]; then
  [ -e "$dir/.backlog-example" ] || { echo "$dir exists and was not made by this script" >&2; exit 1; }
  rm -rf "$dir"
fi
mkdir -p "$dir"
touch "$dir/.backlog-example"
seed=$(mktemp -d)
trap 'rm -rf "$seed"' EXIT

git init -q -b main "$seed"
mkdir -p "$seed/.backlog"
cat > "$seed/.backlog/backlog.yaml" <<'YAML'
# The team's backlog. backlog-operator marks a task completed in the same
# pull request as the task's own changes.
tasks:
  - id: docs-backlog-guide
    title: Write the backlog guide
    description: |
      Explain how tasks move from pending to completed.
    ready: true
    status: pending
    priority: high
    allowed_paths: ["docs/**"]

  - id: ci-cache
    title: Cache dependencies in CI
    ready: false          # not ready yet
    priority: 3
    requires: [docs-backlog-guide]
YAML
echo "# example project" > "$seed/README.md"
git -C "$seed" add -A
git -C "$seed" -c user.name=example -c user.email=example@example.invalid commit -q -m "Initial backlog"
git clone -q --bare "$seed" "$dir/remote.git"
cp "$here/goal.yaml" "$dir/goal.yaml"
echo "example repository: $dir/remote.git (goal: $dir/goal.yaml)" >&2
