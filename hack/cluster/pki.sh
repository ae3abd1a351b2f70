# Certificates and kubeconfigs of the local cluster, made with openssl (sourced by up.sh).
# shellcheck shell=bash

# issue NAME SUBJECT EXT_USAGE [SAN]: an EC P-256 key and a certificate signed by the cluster CA, valid 10 years.
issue() {
  local name=$1 subject=$2 usage=$3 san=${4:-}
  local ext="basicConstraints=critical,CA:FALSE"$'\n'"keyUsage=critical,digitalSignature,keyEncipherment"
  ext+=$'\n'"extendedKeyUsage=$usage"
  [ -n "$san" ] && ext+=$'\n'"subjectAltName=$san"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -extfile <(echo "$ext") -out "$PKI/$name.crt" 2>/dev/null
  rm "$PKI/$name.csr"
}

# Bumped whenever make_pki issues a different set of certificates.
PKI_LAYOUT=2

# make_pki: the CA, every component's certificate and the service-account signing key. Skipped when a set of the
# same layout exists: every other input (names, addresses) is a constant of lib.sh.
make_pki() {
  if [ "$(cat "$PKI/.complete" 2>/dev/null)" = "$PKI_LAYOUT" ]; then
    return
  fi
  if [ -n "$(pid_of kube-apiserver)" ]; then
    die "the running cluster's certificates are of an older layout: run 'make down' first"
  fi
  log "generating certificates in $PKI"
  rm -rf "$PKI" "$STATE/kubeconfig" # kubeconfigs embed the old certificates
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$PKI/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=runway-local-ca" -days 3650 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt"
  local api_san="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  api_san+=",DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP"
  issue apiserver "/CN=kube-apiserver" serverAuth "$api_san"
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  issue admin "/O=system:masters/CN=runway-admin" clientAuth
  issue front-proxy-client "/CN=front-proxy-client" clientAuth
  issue controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue scheduler "/CN=system:kube-scheduler" clientAuth
  issue kube-proxy "/CN=system:kube-proxy" clientAuth
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  issue kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,DNS:localhost,IP:$NODE_IP,IP:127.0.0.1"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
  openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
  echo "$PKI_LAYOUT" >"$PKI/.complete"
}

# kubeconfig FILE CERT_NAME: a kubeconfig for the user of PKI/CERT_NAME.{crt,key}, certificates embedded so the
# file can be copied anywhere on this machine.
kubeconfig() {
  local file=$1 name=$2
  local b64=(base64 -w0)
  umask 077
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: runway
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $("${b64[@]}" <"$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $("${b64[@]}" <"$PKI/$name.crt")
    client-key-data: $("${b64[@]}" <"$PKI/$name.key")
contexts:
- name: runway
  context:
    cluster: runway
    user: $name
current-context: runway
EOF
  mv "$file.tmp" "$file"
  umask 022
}

make_kubeconfigs() {
  mkdir -p "$STATE/kubeconfig"
  local name
  for name in admin controller-manager scheduler kube-proxy kubelet; do
    [ -f "$STATE/kubeconfig/$name.kubeconfig" ] || kubeconfig "$STATE/kubeconfig/$name.kubeconfig" "$name"
  done
}
