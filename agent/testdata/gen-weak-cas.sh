#!/bin/sh
# Regenerates the weak CA certificates the CA intake tests must reject.
# (rcgen cannot produce small RSA keys or SHA-1 signatures.)
set -e
cd "$(dirname "$0")"
openssl req -x509 -newkey rsa:1024 -nodes -keyout /dev/null -subj "/CN=weak rsa1024 CA" \
  -days 36500 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out rsa1024-ca.pem 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj "/CN=sha1 CA" -sha1 \
  -days 36500 -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out sha1-ca.pem 2>/dev/null
