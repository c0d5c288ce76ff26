# The chat page's browser tests (tests/web.rs): Debian's Chromium, CJK fonts
# for the Chinese screenshots, Node, and the pinned playwright-core of tests/web.
apt_install chromium fonts-noto-cjk
command -v npm >/dev/null || apt_install nodejs npm

# `npm ci` again only when package-lock.json changed since the last install.
web_stamp=tests/web/node_modules/.ragstream-lock-sha256
if [ ! -d tests/web/node_modules/playwright-core ] \
  || [ "$(sha256sum <tests/web/package-lock.json)" != "$(cat "$web_stamp" 2>/dev/null)" ]; then
  echo "setup: npm ci in tests/web"
  (cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <tests/web/package-lock.json >"$web_stamp"
fi
