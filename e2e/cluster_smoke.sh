#!/usr/bin/env bash
# e2e/cluster_smoke.sh — the local control plane is what every other e2e test
# assumes (hack/kube-up.sh): a 1.20 API server that answers with a certificate
# our CA signed; token authentication with an admin and a least-privilege
# user; RBAC that refuses that user what its role does not grant; the
# ServiceAccount token controller (without it 1.20 admits no Pod); ownerReference
# garbage collection; and the namespace controller finishing deletions.
set -uo pipefail
# shellcheck source=e2e/lib.sh
source "$(dirname "$0")/lib.sh"

# --- the API server ------------------------------------------------------------

check "API server /readyz is ok through the admin kubeconfig" test "$(kc get --raw /readyz)" = ok
check "API server is Kubernetes v1.20" \
  test "$(kc version -o json 2>/dev/null | jq -r .serverVersion.gitVersion)" = v1.20.2
check "the serving certificate verifies against the cluster CA" \
  curl -fsS --max-time 5 --cacert "$AGENTMESH_TEST_KUBE_CA" -o /dev/null "$KUBE_APISERVER_URL/version"
check "without the CA the serving certificate is refused" \
  test "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$KUBE_APISERVER_URL/version")" = 000
check "a wrong bearer token is 401" test "$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' \
  --cacert "$AGENTMESH_TEST_KUBE_CA" -H 'Authorization: Bearer not-a-token' "$KUBE_APISERVER_URL/api")" = 401

# --- RBAC ----------------------------------------------------------------------

# forbidden CMD...: CMD fails, and it is the authorizer that refused it.
forbidden() {
  local out
  out=$("$@" 2>&1) && return 1
  grep -qi forbidden <<<"$out" || { echo "  not Forbidden: $out"; return 1; }
}
check "admin may do anything" test "$(kc auth can-i '*' '*')" = yes
check "operator user may not delete nodes (auth can-i)" \
  test "$(kc_operator auth can-i delete nodes 2>/dev/null)" = no
check "operator user's node delete is Forbidden" forbidden kc_operator delete node no-such-node
check "operator user cannot bind cluster-admin to itself" forbidden kc_operator create \
  clusterrolebinding "e2e-escalate-$$" --clusterrole=cluster-admin --user=agentmesh-operator
check "operator user may not delete namespaces" \
  test "$(kc_operator auth can-i delete namespaces 2>/dev/null)" = no
if [ -f "$E2E_ROOT/manifests/base/clusterrole.yaml" ]; then
  check "operator user is bound to ClusterRole agentmesh-controller" test "$(kc get \
    clusterrolebinding agentmesh-operator-test -o 'jsonpath={.roleRef.name}/{.subjects[0].name}')" \
    = agentmesh-controller/agentmesh-operator
  check "so it may watch pods cluster-wide" test "$(kc_operator auth can-i watch pods -A)" = yes
fi

# --- a Pod in a fresh namespace ------------------------------------------------

e2e_namespace smoke
sa_token() { kc -n "$NS" get serviceaccount default -o 'jsonpath={.secrets[0].name}'; }
has_sa_token() { [ -n "$(sa_token)" ]; }
check "the default ServiceAccount gets its token Secret" wait_for 60 has_sa_token
create_pod() {
  kc -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: smoke}
spec:
  containers:
  - {name: main, image: registry.invalid/smoke:1}
EOF
}
check "a Pod is admitted" create_pod
check "the Pod mounts the ServiceAccount token" test \
  "$(kc -n "$NS" get pod smoke -o 'jsonpath={.spec.volumes[0].secret.secretName}')" = "$(sa_token)"
check "the Pod stays Pending (there is no kubelet)" \
  test "$(kc -n "$NS" get pod smoke -o 'jsonpath={.status.phase}')" = Pending

# --- ownerReference garbage collection -----------------------------------------

kc -n "$NS" create configmap owner --from-literal=k=v >/dev/null || fail "cannot create ConfigMap owner"
owner_uid=$(kc -n "$NS" get configmap owner -o 'jsonpath={.metadata.uid}')
kc -n "$NS" apply -f - >/dev/null <<EOF || fail "cannot create ConfigMap child"
apiVersion: v1
kind: ConfigMap
metadata:
  name: child
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: "$owner_uid"}
data: {k: v}
EOF
child_gone() { ! kc -n "$NS" get configmap child >/dev/null 2>&1; }
check "the child is there while its owner lives" test "$(kc -n "$NS" get configmap child \
  -o 'jsonpath={.metadata.ownerReferences[0].uid}')" = "$owner_uid"
kc -n "$NS" delete configmap owner --wait=false >/dev/null || fail "cannot delete ConfigMap owner"
check "deleting the owner garbage-collects the child" wait_for 60 child_gone

# --- namespace deletion --------------------------------------------------------

gone_ns=$NS
ns_gone() { ! kc get namespace "$gone_ns" >/dev/null 2>&1; }
kc delete namespace "$gone_ns" --wait=false >/dev/null || fail "cannot delete namespace $gone_ns"
check "a deleted namespace and its Pod are gone within 90 s" wait_for 90 ns_gone
