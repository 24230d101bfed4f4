#!/bin/sh
# Writes docker/.env (or the file given as $1) for docker/compose.yaml: the five secrets that
# `make up` generates into secrets.json, random, readable by you only. Refuses to overwrite.
#   sh docker/gen-env.sh [OUT]
# Needs openssl (or python3).
set -eu
out=${1:-$(cd "$(dirname "$0")" && pwd)/.env}
if [ -e "$out" ]; then
    echo "$out exists: keep it, or remove it to generate new secrets" >&2
    exit 1
fi
if command -v openssl >/dev/null 2>&1; then
    hex() { openssl rand -hex "$1"; }
    fernet() { openssl rand -base64 32 | tr '+/' '-_'; }
else
    hex() { python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
    fernet() { python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'; }
fi
umask 077
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
{
    echo "# docker/gen-env.sh $(date -u +%Y-%m-%dT%H:%M:%SZ): secrets of docker/compose.yaml, keep private"
    echo "LONGTAIL_PG_PASSWORD=$(hex 24)"
    echo "LONGTAIL_ADMIN_PASSWORD=$(hex 12)"
    echo "LONGTAIL_JWT_SECRET=$(hex 32)"
    echo "LONGTAIL_API_SECRET_KEY=$(hex 16)"
    echo "LONGTAIL_FERNET_KEY=$(fernet)"
} >"$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
