#!/bin/sh
# Makes certificates to try mqttd's TLS listener by hand, with the openssl command line:
# the same set that tests/common/certs.rs makes for the tests.
#
#   ca.pem, ca.key                      a certificate authority (CA) of your own
#   server.pem, server.key              the broker's certificate for localhost and
#                                       127.0.0.1, signed by the CA
#   client.pem, client.key              a client's certificate, subject
#                                       C=GB, O=Example, CN=sensor-7, signed by the CA
#   wrong-ca.pem, wrong-ca.key          a second, unrelated CA
#   wrong-client.pem, wrong-client.key  a client with the same subject, signed by the
#                                       wrong CA: a broker trusting ca.pem must refuse it
#
# Usage: tests/data/tls/make-certs.sh [DIRECTORY]   (default: ./certs)
#
# The keys are not encrypted (a broker started by a service manager has nobody to type a
# pass phrase), so keep them to testing. Needs OpenSSL 1.1.1 or later.
set -eu

dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"

# new_key NAME: an ECDSA key on the P-256 curve in NAME.key, PKCS#8 PEM.
new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
}

# new_ca NAME COMMON_NAME: a self-signed CA certificate in NAME.pem, allowed to sign
# certificates and nothing else, valid for ten years.
new_ca() {
    new_key "$1"
    printf '%s\n' \
        'basicConstraints = critical, CA:TRUE' \
        'keyUsage = critical, keyCertSign, cRLSign' \
        'subjectKeyIdentifier = hash' >"$1.ext"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -signkey "$1.key" -extfile "$1.ext" \
        -days 3650 -set_serial "0x$(openssl rand -hex 16)" -out "$1.pem"
    rm "$1.csr" "$1.ext"
}

# issue NAME CA SUBJECT EXTENSION...: a key, and a certificate for it signed by CA, valid
# for a year. Each EXTENSION is one line of openssl's extension syntax.
issue() {
    name=$1 ca=$2 subject=$3
    shift 3
    new_key "$name"
    printf '%s\n' 'basicConstraints = CA:FALSE' 'keyUsage = critical, digitalSignature' \
        'authorityKeyIdentifier = keyid' "$@" >"$name.ext"
    openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
    openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" -extfile "$name.ext" \
        -days 365 -set_serial "0x$(openssl rand -hex 16)" -out "$name.pem"
    rm "$name.csr" "$name.ext"
}

new_ca ca "mqttd test CA"
# TLS clients check the names in subjectAltName, not the Common Name.
issue server ca "/CN=localhost" \
    'subjectAltName = DNS:localhost, IP:127.0.0.1' 'extendedKeyUsage = serverAuth'
# Written country first; printed the other way round (RFC 2253) as
# CN=sensor-7,O=Example,C=GB, the user name use_subject_as_username gives.
issue client ca "/C=GB/O=Example/CN=sensor-7" 'extendedKeyUsage = clientAuth'

new_ca wrong-ca "mqttd unrelated CA"
issue wrong-client wrong-ca "/C=GB/O=Example/CN=sensor-7" 'extendedKeyUsage = clientAuth'

# Check what was made: the first two must say OK, the last must fail.
openssl verify -CAfile ca.pem server.pem client.pem
if openssl verify -CAfile ca.pem wrong-client.pem >/dev/null 2>&1; then
    echo "wrong-client.pem should not verify against ca.pem" >&2
    exit 1
fi
openssl x509 -in client.pem -noout -subject -nameopt RFC2253

cat <<END

Made in $(pwd). A listener that requires client certificates:

    listener 8883
    certfile $(pwd)/server.pem
    keyfile $(pwd)/server.key
    cafile $(pwd)/ca.pem
    require_certificate true
    use_identity_as_username true

and a client for it:

    mosquitto_sub -h localhost -p 8883 -t '#' -v --cafile ca.pem --cert client.pem --key client.key
END
