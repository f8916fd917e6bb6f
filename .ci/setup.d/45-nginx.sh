# shellcheck shell=bash
# nginx, for the reverse-proxy test (tests/test_scaling.py runs it with
# examples/nginx.conf in front of `trio-live serve --workers 2`). The test
# starts its own nginx on loopback ports with a config in a temporary folder;
# the system service is not used. Sourced by .ci/setup.sh (`apt_install`).
echo "reverse proxy: nginx"
apt_install nginx
