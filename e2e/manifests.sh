#!/usr/bin/env bash
# shellcheck disable=SC2016  # jq programs are single-quoted on purpose
# e2e/manifests.sh — the kustomize trees under manifests/ against the real
# kube-apiserver (1.20).
#
# For manifests/base and every overlay: `kubectl kustomize` renders it, and
# `kubectl apply --dry-run=server` accepts every rendered object whose API
# version the server serves (kubectl first checks each object against the
# server's OpenAPI schema, so unknown or misspelt fields fail too). Objects of
# API versions this server does not serve cannot be checked server-side and
# are named in the output:
#   - policy/v1 PodDisruptionBudget (Kubernetes 1.21+): sent to the server as
#     policy/v1beta1, whose fields are the same, and checked against the
#     controller Deployment client-side;
#   - cert-manager.io/v1 Issuer and Certificate (cert-manager CRDs are not
#     installed here): checked client-side for consistency with the rest of the
#     tree (issuer reference, DNS names of the webhook Service, the Secret the
#     controller mounts, the inject-ca-from annotations).
# Any other unserved API version fails the test. Beyond validity, it checks
# what each tree promises: the controller's HA and hardening settings, RBAC
# without wildcards, webhook settings, that the injector's three webhook
# entries never both match one pod, and each overlay's own additions.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$here/lib.sh"

OPNS=agentmesh-system

command -v yq >/dev/null || fail "yq not installed (hack/install-deps.sh)"

# Server-side dry-run of namespaced objects needs their namespace to exist
# (and not be terminating, as after an earlier run of this test).
ns_phase() { kc get namespace "$OPNS" -o jsonpath='{.status.phase}' 2>/dev/null || echo Absent; }
ns_not_terminating() { [ "$(ns_phase)" != Terminating ]; }
wait_for 60 ns_not_terminating || fail "namespace $OPNS still terminating after 60 s"
if [ "$(ns_phase)" = Absent ]; then
  kc create namespace "$OPNS" >/dev/null || fail "cannot create namespace $OPNS"
  E2E_NAMESPACES+=("$OPNS")     # ours: lib.sh deletes it on exit
fi
served=$(kc api-versions | jq -R . | jq -sc .) || fail "cannot list the server's API versions"
[ "$(jq length <<<"$served")" -gt 10 ] || fail "the server lists too few API versions: $served"

# jq helpers over the array of a tree's rendered objects.
JQLIB='
def obj($k; $n): first(.[] | select(.kind == $k and .metadata.name == $n));
def ctl: obj("Deployment"; "agentmesh-controller");
def container: ctl.spec.template.spec.containers[] | select(.name == "controller");
def env($n): [container.env[]? | select(.name == $n)][0];
def sel_matches($labels):
  ((.matchLabels // {}) | to_entries | all(.value == $labels[.key])) and
  ((.matchExpressions // []) | all(
    .key as $k | (.values // []) as $vs |
    if .operator == "In" then ($labels | has($k)) and any($vs[]; . == $labels[$k])
    elif .operator == "NotIn" then (($labels | has($k)) | not) or all($vs[]; . != $labels[$k])
    elif .operator == "Exists" then $labels | has($k)
    elif .operator == "DoesNotExist" then ($labels | has($k)) | not
    else error("operator \(.operator)") end));
'
# q FILTER OBJECTS_JSON: runs FILTER (with JQLIB) over a tree's objects.
q() { jq -r "$JQLIB $1" <<<"$2"; }
starts_with() { [[ "$1" == "$2"* ]]; }

# Every combination of namespace and pod labels that matters to injection,
# with the number of webhook entries that must match it (0 or 1). Namespaces
# carry kubernetes.io/metadata.name, as API servers from 1.21 set it.
injection_mismatches() {
  jq -r "$JQLIB"'
    obj("MutatingWebhookConfiguration"; "agentmesh-sidecar-injector").webhooks as $hooks
    | [ ("agents", "kube-system", "agentmesh-system") as $ns
      | (null, "enabled", "disabled", "other") as $inject
      | (null, "enabled") as $legacy
      | (null, "true", "false") as $pod
      | ({"kubernetes.io/metadata.name": $ns}
         + (if $inject then {"agentmesh.io/inject": $inject} else {} end)
         + (if $legacy then {"agentmesh-inject": $legacy} else {} end)) as $nsl
      | (if $pod then {"agentmesh.io/inject": $pod} else {} end) as $pl
      | ([$hooks[] | select((.namespaceSelector // {} | sel_matches($nsl))
                            and (.objectSelector // {} | sel_matches($pl)))] | length) as $n
      | (if $ns == "agents" and $inject != "disabled" and $pod != "false"
            and ($inject == "enabled" or $legacy == "enabled" or $pod == "true")
         then 1 else 0 end) as $want
      | select($n != $want)
      | "namespace \($nsl) pod \($pl): \($n) entries match, want \($want)" ]
    | .[]' <<<"$1"
}

# check_common OBJECTS_JSON TREE: what every tree promises.
check_common() {
  local objs=$1 t=$2
  check "$t: controller has 3 replicas, image agentmesh/agentmesh-controller:0.1.0" \
    test "$(q 'ctl.spec.replicas, container.image' "$objs" | tr '\n' ' ')" = "3 agentmesh/agentmesh-controller:0.1.0 "
  check "$t: ports api 8080, metrics 9090, webhook 9443" \
    test "$(q '[container.ports[] | "\(.name)=\(.containerPort)"] | join(" ")' "$objs")" = "api=8080 metrics=9090 webhook=9443"
  check "$t: probes /healthz and /readyz on the metrics port" \
    test "$(q 'container | "\(.livenessProbe.httpGet.path) \(.livenessProbe.httpGet.port) \(.readinessProbe.httpGet.path) \(.readinessProbe.httpGet.port)"' "$objs")" = \
    "/healthz metrics /readyz metrics"
  check "$t: non-root 65532, read-only root, no capabilities, RuntimeDefault seccomp" \
    test "$(q 'ctl.spec.template.spec.securityContext as $p | container.securityContext as $c |
      [$p.runAsNonRoot, $p.runAsUser, $p.seccompProfile.type, $c.readOnlyRootFilesystem,
       $c.allowPrivilegeEscalation, ($c.capabilities.drop | join(","))] | @csv' "$objs")" = \
    'true,65532,"RuntimeDefault",true,false,"ALL"'
  check "$t: requests cpu 100m memory 64Mi, limit memory 256Mi (sized from bench/controller.sh)" \
    test "$(q 'container.resources | "\(.requests.cpu) \(.requests.memory) \(.limits.memory)"' "$objs")" = "100m 64Mi 256Mi"
  check "$t: AGENTMESH_NAMESPACE from the pod's namespace" \
    test "$(q 'env("AGENTMESH_NAMESPACE").valueFrom.fieldRef.fieldPath' "$objs")" = metadata.namespace
  check "$t: spread and anti-affinity over topology.kubernetes.io/zone" \
    test "$(q 'ctl.spec.template.spec | [(.topologySpreadConstraints[].topologyKey),
      (.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm.topologyKey)]
      | map(select(. == "topology.kubernetes.io/zone")) | length' "$objs")" = 2
  check "$t: PodDisruptionBudget minAvailable 2 selects the controller pods" \
    test "$(q 'ctl.spec.template.metadata.labels as $l | [.[] | select(.kind == "PodDisruptionBudget")]
      | map(select(.spec.minAvailable == 2 and (.spec.selector | sel_matches($l)))) | length' "$objs")" = 1
  check "$t: webhook Service agentmesh-webhook 443 -> webhook (9443)" \
    test "$(q 'obj("Service"; "agentmesh-webhook").spec.ports[0] | "\(.port) \(.targetPort)"' "$objs")" = "443 webhook"
  check "$t: every Service selects the controller pods" \
    test "$(q 'ctl.spec.template.metadata.labels as $l | [.[] | select(.kind == "Service" and
      (.metadata.name | startswith("agentmesh-controller") or startswith("agentmesh-metrics") or startswith("agentmesh-webhook")))
      | .spec | {matchLabels: .selector} | sel_matches($l)] | all and length == 3' "$objs")" = true
  check "$t: ClusterRole and Role have no wildcard" \
    test "$(q '[.[] | select(.kind == "ClusterRole" or .kind == "Role") | .rules[] | (.apiGroups + .resources + .verbs)[]
      | select(. == "*")] | length' "$objs")" = 0
  check "$t: webhook configurations limited by resourceNames in the ClusterRole" \
    test "$(q '[obj("ClusterRole"; "agentmesh-controller").rules[] | select(.apiGroups == ["admissionregistration.k8s.io"])
      | .resourceNames[]] | sort | join(" ")' "$objs")" = "agentmesh-sidecar-injector agentmesh-validator"
  check "$t: injector: /mutate-pods, Ignore, None, 5 s, IfNeeded, v1" \
    test "$(q '[obj("MutatingWebhookConfiguration"; "agentmesh-sidecar-injector").webhooks[] |
      "\(.clientConfig.service.path) \(.failurePolicy) \(.sideEffects) \(.timeoutSeconds) \(.reinvocationPolicy) \(.admissionReviewVersions)"]
      | unique | join(";")' "$objs")" = '/mutate-pods Ignore None 5 IfNeeded ["v1"]'
  check "$t: validator: /validate-agentmesh, Fail, CREATE/UPDATE of both kinds" \
    test "$(q 'obj("ValidatingWebhookConfiguration"; "agentmesh-validator").webhooks[0] |
      "\(.clientConfig.service.path) \(.failurePolicy) \(.rules[0].operations) \(.rules[0].resources)"' "$objs")" = \
    '/validate-agentmesh Fail ["CREATE","UPDATE"] ["agentidentities","trustpolicies"]'
  local mismatches
  mismatches=$(injection_mismatches "$objs")
  check "$t: each opted-in pod matches exactly one injector entry, others none${mismatches:+$'\n'$mismatches}" \
    test -z "$mismatches"
  check "$t: NetworkPolicy: 8080/9090 from agentmesh-access namespaces, 9443 from anywhere" \
    test "$(q 'obj("NetworkPolicy"; "agentmesh-controller").spec.ingress | map(
      "\(.from // "any" | if type == "array" then (.[0].namespaceSelector.matchLabels | to_entries[0] | "\(.key)=\(.value)") else . end):\([.ports[].port] | join(","))")
      | join(" ")' "$objs")" = "agentmesh-access=true:8080,9090 any:9443"
  check "$t: NetworkPolicy egress: DNS, API server, Redis, PostgreSQL" starts_with \
    "$(q '[obj("NetworkPolicy"; "agentmesh-controller").spec.egress[].ports[] | "\(.protocol)/\(.port)"] | join(" ")' "$objs")" \
    'UDP/53 TCP/53 TCP/443 TCP/6443 TCP/6379 TCP/6380 TCP/5432'

}

# check_overlay TREE OBJECTS_JSON: what each overlay adds.
check_overlay() {
  local t=$1 objs=$2
  case $t in
  overlays/aws)
    check "$t: IRSA role ARN on the controller ServiceAccount" eval "q 'obj(\"ServiceAccount\"; \"agentmesh-controller\")
      .metadata.annotations[\"eks.amazonaws.com/role-arn\"]' \"\$objs\" | grep -E '^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+' >/dev/null" ;;&
  overlays/aws | overlays/azure)
    check "$t: Redis and PostgreSQL URLs from Secret agentmesh-storage" \
      test "$(q '[env("AGENTMESH_REDIS_URL"), env("AGENTMESH_POSTGRES_URL")] | map(.valueFrom.secretKeyRef | "\(.name)/\(.key)") | join(" ")' "$objs")" = \
      "agentmesh-storage/redis-url agentmesh-storage/postgres-url" ;;&
  overlays/azure)
    check "$t: Workload Identity label and client-id on the ServiceAccount, label on the pods" \
      test "$(q 'obj("ServiceAccount"; "agentmesh-controller").metadata as $sa | [$sa.labels["azure.workload.identity/use"],
        ($sa.annotations["azure.workload.identity/client-id"] | test("^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")),
        ctl.spec.template.metadata.labels["azure.workload.identity/use"]] | @csv' "$objs")" = '"true",true,"true"' ;;
  overlays/gcp)
    check "$t: GKE Workload Identity annotation" eval "q 'obj(\"ServiceAccount\"; \"agentmesh-controller\")
      .metadata.annotations[\"iam.gke.io/gcp-service-account\"]' \"\$objs\" | grep -E '^[a-z][-a-z0-9]*@[a-z][-a-z0-9]*\.iam\.gserviceaccount\.com$' >/dev/null"
    check "$t: NetworkPolicy lets the controller reach the metadata server" \
      test "$(q '[obj("NetworkPolicy"; "agentmesh-controller").spec.egress[] | .to[]?.ipBlock.cidr] | join(" ")' "$objs")" = \
      "169.254.169.254/32 169.254.169.252/32" ;;
  overlays/ha-redis-postgres)
    check "$t: controller URLs name in-cluster Services that exist" \
      test "$(q '. as $all | [env("AGENTMESH_REDIS_URL").value, env("AGENTMESH_POSTGRES_URL").value]
        | map(capture("@(?<svc>[a-z-]+)\\.(?<ns>[a-z-]+)\\.svc:(?<port>[0-9]+)")) as $u
        | [$u[] | . as $x | $all | obj("Service"; $x.svc) | select(.metadata.namespace == $x.ns)
           | select(any(.spec.ports[]; .port == ($x.port | tonumber)))] | length' "$objs")" = 2
    check "$t: Redis and PostgreSQL admit only the controller" \
      test "$(q '[obj("NetworkPolicy"; "agentmesh-redis"), obj("NetworkPolicy"; "agentmesh-postgres")]
        | map(.spec.ingress[0].from[0].podSelector.matchLabels["app.kubernetes.io/name"]) | join(" ")' "$objs")" = \
      "agentmesh-controller agentmesh-controller"
    check "$t: password variable precedes the URL that expands it" \
      test "$(q '[container.env[].name] | (index("REDIS_PASSWORD") < index("AGENTMESH_REDIS_URL"))' "$objs")" = true ;;
  overlays/cert-manager)
    check "$t: --webhook-cert-dir is where the certificate Secret is mounted read-only" \
      test "$(q 'container as $c | ($c.volumeMounts[] | select(.name == "webhook-certs")) as $m
        | ctl.spec.template.spec.volumes[] | select(.name == "webhook-certs")
        | "\($c.args | index("--webhook-cert-dir=\($m.mountPath)") != null) \($m.readOnly) \($m.mountPath)"' "$objs")" = \
      "true true /etc/agentmesh/webhook-certs" ;;
  overlays/k8s-1.20)
    check "$t: PodDisruptionBudget is policy/v1beta1 only" \
      test "$(q '[.[] | select(.kind == "PodDisruptionBudget") | .apiVersion] | join(" ")' "$objs")" = policy/v1beta1 ;;
  esac
}

# check_unserved TREE OBJECTS_JSON UNSERVED_JSON: checks of the objects the
# server cannot validate.
check_unserved() {
  local t=$1 objs=$2 u=$3 pdb
  check "$t: only policy/v1 and cert-manager.io/v1 objects are left unserved" \
    test "$(q '[.[] | .apiVersion | select(. != "policy/v1" and . != "cert-manager.io/v1")] | length' "$u")" = 0
  pdb=$(jq -c '[.[] | select(.apiVersion == "policy/v1" and .kind == "PodDisruptionBudget")
    | .apiVersion = "policy/v1beta1"]' <<<"$u")
  if [ "$(jq length <<<"$pdb")" -gt 0 ]; then
    if out=$(jq '{apiVersion: "v1", kind: "List", items: .}' <<<"$pdb" | kc apply --dry-run=server -f - 2>&1); then
      ok "$t: policy/v1 PodDisruptionBudget (not served here) accepted server-side as policy/v1beta1"
    else
      bad "$t: PodDisruptionBudget refused as policy/v1beta1: $out"
    fi
  fi
  if [ "$(q 'any(.[]; .apiVersion == "cert-manager.io/v1")' "$u")" = true ]; then
    check "$t: (client-side) Certificate references an Issuer of this tree" \
      test "$(q '[.[] | select(.kind == "Certificate")] as $c | [.[] | select(.kind == "Issuer")] as $i
        | $c | map(.spec.issuerRef as $r | .metadata.namespace as $n
          | any($i[]; .metadata.name == $r.name and .metadata.namespace == $n and $r.kind == "Issuer")) | all and length == 1' "$objs")" = true
    check "$t: (client-side) Certificate covers the webhook Service's DNS names" \
      test "$(q 'obj("Service"; "agentmesh-webhook").metadata as $s | first(.[] | select(.kind == "Certificate")).spec.dnsNames
        | index("\($s.name).\($s.namespace).svc") != null' "$objs")" = true
    check "$t: (client-side) the controller mounts the Certificate's Secret" \
      test "$(q 'first(.[] | select(.kind == "Certificate")).spec.secretName as $s
        | [ctl.spec.template.spec.volumes[] | select(.secret.secretName == $s)] | length' "$objs")" = 1
    check "$t: (client-side) both webhook configurations take their CA from that Certificate" \
      test "$(q 'first(.[] | select(.kind == "Certificate")).metadata as $m | [.[] | select(.kind | endswith("WebhookConfiguration"))
        | .metadata.annotations["cert-manager.io/inject-ca-from"] == "\($m.namespace)/\($m.name)"] | all and length == 2' "$objs")" = true
    check "$t: (client-side) Issuer and Certificate have the fields cert-manager requires" \
      test "$(q '[.[] | select(.apiVersion == "cert-manager.io/v1") | .metadata.name != null and .metadata.namespace != null
        and (if .kind == "Certificate" then .spec.secretName != null and .spec.issuerRef.name != null
             elif .kind == "Issuer" then (.spec | keys | length) == 1 else false end)] | all' "$objs")" = true
  fi
}

trees=(base)
for d in "$root"/manifests/overlays/*/; do trees+=("overlays/$(basename "$d")"); done
[ "${#trees[@]}" -ge 7 ] || bad "expected base and at least 6 overlays, found: ${trees[*]}"

for t in "${trees[@]}"; do
  if ! yaml=$(kc kustomize "$root/manifests/$t" 2>&1); then
    bad "$t: kubectl kustomize failed: $yaml"
    continue
  fi
  all=$(yq -c 'select(. != null)' <<<"$yaml" | jq -sc .) || { bad "$t: rendered YAML does not parse"; continue; }
  ok "$t renders ($(jq length <<<"$all") objects)"
  srv=$(jq -c --argjson gv "$served" '[.[] | select(.apiVersion as $v | $gv | index($v))]' <<<"$all")
  unsrv=$(jq -c --argjson gv "$served" '[.[] | select(.apiVersion as $v | $gv | index($v) | not)]' <<<"$all")
  nserved=$(jq length <<<"$srv")
  if out=$(jq '{apiVersion: "v1", kind: "List", items: .}' <<<"$srv" | kc apply --dry-run=server -f - 2>&1); then
    accepted=$(grep -c '(server dry run)$' <<<"$out")
    check "$t: API server accepts all $nserved served objects (dry-run=server; $accepted reported)" test "$accepted" -eq "$nserved"
  else
    bad "$t: API server refused objects: $(grep -v '(server dry run)$' <<<"$out")"
  fi
  unserved=$(q '[.[] | "\(.apiVersion) \(.kind)/\(.metadata.name)"] | join(", ")' "$unsrv")
  [ -n "$unserved" ] && echo "note - $t: not served by this API server, checked otherwise: $unserved"
  check_unserved "$t" "$all" "$unsrv"
  check_common "$all" "$t"
  check_overlay "$t" "$all"
done
