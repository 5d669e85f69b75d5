#!/usr/bin/env bash
# Refreshes the vendored abcjs (the score renderer of the composer page) from
# the npm registry at a pinned version, and checks the files against pinned
# digests. To move to another version: change VERSION, run with --update,
# look at the page, and commit the new digests this prints.
set -euo pipefail
VERSION=6.7.2
DIGESTS="3290ef44c918d5e882029d3a47ad3dd63c16c8819da5abe921f3d1e642b4f4f0  abcjs-basic-min.js
d7bdcd152b978adee22a2f9b92a4d72c4ec2c20a86512766c7c210b462b54702  abcjs-LICENSE.md"
cd "$(dirname "$0")/../crates/melody-server/page/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "abcjs@$VERSION" >/dev/null && tar xzf "abcjs-$VERSION.tgz")
cp "$work/package/dist/abcjs-basic-min.js" "$work/package/dist/abcjs-basic-min.js.LICENSE" .
cp "$work/package/LICENSE.md" abcjs-LICENSE.md
if [ "${1:-}" = "--update" ]; then
  sha256sum abcjs-basic-min.js abcjs-LICENSE.md
else
  echo "$DIGESTS" | sha256sum --check
fi
