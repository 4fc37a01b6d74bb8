#!/bin/sh
#   Check the packages agentd needs to build and test; install the missing
#   ones when run as root on Debian, or say which to install.
PACKAGES="build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libsodium-dev libjansson-dev valgrind"
missing=""
for package in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq $missing >&2 && exit 0
    echo "apt-get could not install:$missing" >&2
    exit 1
fi
echo "missing packages:$missing" >&2
echo "install them with: sudo apt-get install$missing" >&2
exit 1
