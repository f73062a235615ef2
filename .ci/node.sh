#!/bin/sh
# node.sh - make sure node and npm are there for the browser tests.
# Checks the commands, not the packages: a node from elsewhere (nodesource's
# nodejs bundles npm) must not pull in Debian's npm, which conflicts with it.
# Debian 12's nodejs is v18; tests/browser pins a playwright-core for >= 18.
command -v node >/dev/null 2>&1 || sh "$(dirname "$0")/deps.sh" nodejs || exit 1
command -v npm >/dev/null 2>&1 || sh "$(dirname "$0")/deps.sh" npm || exit 1
exit 0
