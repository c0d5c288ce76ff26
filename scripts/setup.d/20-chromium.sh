# The web page's browser tests (tests/web.rs): Debian's Chromium, CJK fonts for
# the Chinese screenshots, and the pinned playwright-core of tests/web.
apt_install chromium fonts-noto-cjk

# npm ci again only when package-lock.json changed since the last install.
web_lock=tests/web/package-lock.json
web_stamp=tests/web/node_modules/.package-lock.json
if [ ! -f "$web_stamp" ] || ! cmp -s <(sha256sum <"$web_lock") tests/web/node_modules/.ragstream-lock-sha256 2>/dev/null; then
  echo "setup: npm ci in tests/web"
  (cd tests/web && npm ci --no-audit --no-fund --loglevel=error)
  sha256sum <"$web_lock" >tests/web/node_modules/.ragstream-lock-sha256
fi
