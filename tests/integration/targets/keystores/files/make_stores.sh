#!/bin/sh
# Build a guichet's stores with the real tools, holding V4 (sometimes under odd names),
# an unrelated partner authority, and private keys:  make_stores.sh PKI_DIR ROOT
set -eu
PKI="$1"; ROOT="$2"
rm -rf "$ROOT"; mkdir -p "$ROOT/conf" "$ROOT/certs" "$ROOT/anchors" "$ROOT/bad"
kt() { keytool -J-Duser.language=en "$@" >/dev/null 2>&1; }

# JKS: a private key made by keytool, V4 under an unusual alias, the V4 authority, a partner.
kt -genkeypair -keystore "$ROOT/conf/app.jks" -storetype JKS -storepass changeit -keypass changeit \
   -alias guichet-signing -keyalg RSA -keysize 2048 -dname "CN=guichet.example,O=Bailleur" -validity 3650
kt -importcert -noprompt -keystore "$ROOT/conf/app.jks" -storetype JKS -storepass changeit \
   -alias old-ministry-cert-2014 -file "$PKI/chiffrement-v4.pem"
kt -importcert -noprompt -keystore "$ROOT/conf/app.jks" -storetype JKS -storepass changeit \
   -alias ac-sne-v4 -file "$PKI/ac-v4.pem"
kt -importcert -noprompt -keystore "$ROOT/conf/app.jks" -storetype JKS -storepass changeit \
   -alias partner-ca -file "$PKI/ac-v6.pem"

# PKCS12 with a private key (keytool path) and a trust-only PKCS12.
kt -genkeypair -keystore "$ROOT/conf/app.p12" -storetype PKCS12 -storepass changeit \
   -alias guichet-tls -keyalg RSA -keysize 2048 -dname "CN=guichet-tls.example" -validity 3650
kt -importcert -noprompt -keystore "$ROOT/conf/app.p12" -storetype PKCS12 -storepass changeit \
   -alias sne-v4 -file "$PKI/chiffrement-v4.pem"
kt -importcert -noprompt -keystore "$ROOT/conf/trust.p12" -storetype PKCS12 -storepass trustpass \
   -alias sne-chiffrement -file "$PKI/chiffrement-v4.pem"
kt -importcert -noprompt -keystore "$ROOT/conf/trust.p12" -storetype PKCS12 -storepass trustpass \
   -alias partner-ca -file "$PKI/ac-v6.pem"

# A PEM bundle with a comment, V4, and a partner authority; a DER file holding V4.
{ echo "# certificates read by the guichet"; cat "$PKI/chiffrement-v4.pem" "$PKI/ac-v6.pem"; } > "$ROOT/conf/sne.pem"
cp "$PKI/chiffrement-v4.der" "$ROOT/conf/Chiffrement_SNE.cer"

# A hashed PEM folder (as c_rehash makes it) and Debian-style trust anchors.
cp "$PKI/chiffrement-v4.pem" "$ROOT/certs/chiffrement-v4.pem"
cp "$PKI/ac-v4.pem" "$ROOT/certs/ac-v4.pem"
cp "$PKI/ac-v6.pem" "$ROOT/certs/partner.pem"
openssl rehash "$ROOT/certs"
cp "$PKI/ac-v4.pem" "$ROOT/anchors/ac-sne-v4.crt"

# An NSS database (sql: format) with a password: a key pair, V4 under an odd nickname, its
# authority. The password file stays for the read-back (certutil -K).
mkdir "$ROOT/nssdb"; printf 'nsspass\n' > "$ROOT/nss.pw"; chmod 0600 "$ROOT/nss.pw"
cu() { certutil -d "sql:$ROOT/nssdb" -f "$ROOT/nss.pw" "$@" >/dev/null 2>&1; }
cu -N
head -c 64 /dev/urandom > "$ROOT/nss.noise"
cu -S -x -n guichet-tls -s "CN=guichet-tls.example" -t u,u,u -z "$ROOT/nss.noise"
rm "$ROOT/nss.noise"
cu -A -n "Ministere - chiffrement (2014)" -t P,, -i "$PKI/chiffrement-v4.der"
cu -A -n "AC SNE V4" -t C,, -i "$PKI/ac-v4.der"

# Broken stores for the bad-input tests.
cp "$ROOT/conf/app.jks" "$ROOT/bad/wrong-password.jks"
head -c 700 "$ROOT/conf/app.jks" > "$ROOT/bad/truncated.jks"
cp "$PKI/ac-v6.pem" "$ROOT/bad/not-a-keystore.jks"
cp "$ROOT/conf/app.p12" "$ROOT/bad/needs-keytool.p12"
cp -a "$ROOT/nssdb" "$ROOT/bad/nssdb"   # for the read-only file system case
chmod 0640 "$ROOT/conf/app.jks"
