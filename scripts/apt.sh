# Sourced by the set-up scripts that need a Debian package (browser.sh, postgres.sh):
#   apt_install PACKAGE   installs it with apt-get, as root or with password-less sudo; does nothing elsewhere
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null 2>&1 && { [ -z "$sudo" ] || sudo -n true 2>/dev/null; }; then
    echo "== installing $1 (apt-get)"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$1" >/dev/null
  fi
}
