# PostgreSQL 15 and pgvector, for the PostgreSQL store's tests (tests/support/pg.rs starts a
# throwaway cluster with these binaries). Debian bookworm has no pgvector package: it is built
# from Debian trixie's source package (pgvector 0.8.0) against postgresql-server-dev-15.
# openssl makes the test cluster's self-signed TLS certificate.
apt_install postgresql-15 postgresql-server-dev-15 build-essential dpkg-dev openssl

if [ ! -f /usr/share/postgresql/15/extension/vector.control ]; then
  echo "setup: building pgvector from Debian trixie's source package"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  pgv_tmp="$(mktemp -d)"
  pgv_list=/etc/apt/sources.list.d/ragstream-trixie-src.list
  echo "deb-src http://deb.debian.org/debian trixie main" | $sudo tee "$pgv_list" >/dev/null
  $sudo apt-get update -qq -o Dir::Etc::sourcelist="$pgv_list" -o Dir::Etc::sourceparts=- \
    -o APT::Get::List-Cleanup=0
  (cd "$pgv_tmp" && apt-get source -qq --download-only pgvector >/dev/null && dpkg-source -x --no-check ./*.dsc src >/dev/null)
  $sudo rm -f "$pgv_list"
  $sudo apt-get update -qq
  (cd "$pgv_tmp/src" && make -s PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null \
    && $sudo make -s install PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >/dev/null)
  rm -rf "$pgv_tmp"
  [ -f /usr/share/postgresql/15/extension/vector.control ] || { echo "setup: pgvector did not install" >&2; exit 1; }
fi
