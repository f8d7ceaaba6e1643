#!/usr/bin/env bash
# e2e/crds.sh — the CRDs against the real kube-apiserver (1.20).
#
# Applies crds/, then checks: both CRDs are established and structural, short
# names and the agentmesh category work, every sample applies (in a namespace
# of this run), the schema's defaults land, bad custom resources are refused
# by the API server itself (kubectl's client-side validation off) with a
# message naming the field, good edge cases are accepted, unknown fields are
# pruned, the status subresource is validated, `kubectl get agid` prints the
# DID, Tier, Score, Phase and Age columns, and `kubectl explain` shows our
# descriptions.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=e2e/lib.sh
source "$here/lib.sh"

e2e_namespace crds
contains() { [[ "$1" == *"$2"* ]]; }
lacks() { [[ "$1" != *"$2"* ]]; }

# --- the CRDs -----------------------------------------------------------------

kc apply -f "$root/crds/" >/dev/null || fail "kubectl apply -f crds/ failed"
for crd in agentidentities.agentmesh.io trustpolicies.agentmesh.io; do
  wait_for 30 kc wait --for condition=established --timeout=5s "crd/$crd" ||
    fail "$crd not established"
  conds=$(kc get crd "$crd" -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')
  check "$crd established" contains "$conds" Established=True
  check "$crd names accepted" contains "$conds" NamesAccepted=True
  check "$crd schema is structural ($conds)" lacks "$conds" NonStructuralSchema
done

resources=$(kc api-resources --api-group=agentmesh.io --no-headers)
check "short name agid, namespaced, kind AgentIdentity" \
  grep -Eq '^agentidentities +agid +agentmesh.io/v1alpha1 +true +AgentIdentity$' <<<"$resources"
check "short name tp, namespaced, kind TrustPolicy" \
  grep -Eq '^trustpolicies +tp +agentmesh.io/v1alpha1 +true +TrustPolicy$' <<<"$resources"

# --- samples --------------------------------------------------------------------

# The samples live in agents-demo; this run puts them in its own namespace so
# that it shares nothing with other runs or with a demo in progress.
sample() { sed -e "s/namespace: agents-demo/namespace: $NS/" -e "s/name: agents-demo/name: $NS/" "$1"; }

for f in "$root"/samples/*.yaml; do
  name=${f#"$root/"}
  if out=$(sample "$f" | kc apply -f - 2>&1); then ok "$name applies"; else bad "$name applies: $out"; fi
done
check "namespace carries agentmesh.io/inject=enabled" \
  test "$(kc get ns "$NS" -o jsonpath='{.metadata.labels.agentmesh\.io/inject}')" = enabled
check "agent Deployment runs as an AgentIdentity's ServiceAccount" test \
  "$(kc -n "$NS" get deploy agent-alpha -o jsonpath='{.spec.template.spec.serviceAccountName}')" = \
  "$(kc -n "$NS" get agid agent-alpha -o jsonpath='{.spec.serviceAccountName}')"

check "kubectl get agid lists the three sample agents" \
  test "$(kc -n "$NS" get agid --no-headers -o custom-columns=N:.metadata.name | sort | tr '\n' ' ')" = \
  "agent-alpha agent-beta agent-gamma "
check "kubectl get tp lists the three sample policies" \
  test "$(kc -n "$NS" get tp --no-headers -o custom-columns=N:.metadata.name | sort | tr '\n' ' ')" = \
  "default permissive strict "
check "kubectl get agentmesh (category) lists both kinds" \
  test "$(kc -n "$NS" get agentmesh --no-headers -o name | wc -l)" -eq 6

# --- defaults -------------------------------------------------------------------

kc -n "$NS" apply -f - >/dev/null <<'EOF' || bad "minimal AgentIdentity applies"
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: minimal}
spec:
  sponsor: dana@example.com
  cloud: {aws: {roleArn: "arn:aws:iam::123456789012:role/minimal"}}
EOF
spec=$(kc -n "$NS" get agid minimal -o json | jq -c .spec)
check "defaults: initialScore 500, no rotation, not suspended ($spec)" \
  test "$(jq -r '[.trust.initialScore, .keyRotation.intervalSeconds, .suspended] | @csv' <<<"$spec")" = '500,0,false'
check "defaults: AWS audience, regional STS, token 86400 s, no token injection" \
  test "$(jq -r '.cloud.aws | [.audience, .stsRegionalEndpoints, .tokenExpirationSeconds, .injectToken] | @csv' <<<"$spec")" = \
  '"sts.amazonaws.com",true,86400,false'
check "defaults: no serviceAccountName written (the controller defaults it to the name)" \
  test "$(jq -r '.serviceAccountName // "unset"' <<<"$spec")" = unset
default_priority=$(printf '%s\n' 'apiVersion: agentmesh.io/v1alpha1' 'kind: TrustPolicy' \
  "metadata: {name: p, namespace: $NS}" \
  'spec: {rules: [{name: r, condition: {field: tier, operator: eq, value: trusted}, action: warn}]}' |
  kc apply --dry-run=server -o jsonpath='{.spec.rules[0].priority}' -f -)
check "defaults: rule priority 100 when not given ($default_priority)" test "$default_priority" = 100

# --- refused by the API server, naming the field ------------------------------

# refused <what> <field that must appear in the error> <kind> <spec as flow YAML>
refused() {
  local what=$1 field=$2 kind=$3 spec=$4
  if out=$(printf '%s\n' "apiVersion: agentmesh.io/v1alpha1" "kind: $kind" \
    "metadata: {name: bad, namespace: $NS}" "spec: $spec" |
    kc apply --validate=false --dry-run=server -f - 2>&1); then
    bad "$what: accepted, should be refused"
  elif contains "$out" "$field"; then
    ok "$what refused naming $field"
  else
    bad "$what refused, but the message does not name $field: $out"
  fi
}
# accepted <what> <kind> <spec as flow YAML>
accepted() {
  if out=$(printf '%s\n' "apiVersion: agentmesh.io/v1alpha1" "kind: $2" \
    "metadata: {name: good, namespace: $NS}" "spec: $3" |
    kc apply --validate=false --dry-run=server -f - 2>&1); then
    ok "$1 accepted"
  else
    bad "$1 refused: $out"
  fi
}

AWS='arn:aws:iam::123456789012:role/agent'
UUID=3f2b8c1e-7d4a-4e6b-9a0c-5d1e2f3a4b5c
GSA=agent@my-project.iam.gserviceaccount.com
rule() { echo "{name: ${4:-r}, condition: {field: $1, operator: $2, value: $3}, action: ${5:-deny}}"; }

refused "missing sponsor" spec.sponsor AgentIdentity '{description: x}'
refused "bad e-mail" spec.sponsor AgentIdentity '{sponsor: alice.example.com}'
refused "e-mail without domain" spec.sponsor AgentIdentity '{sponsor: alice@localhost}'
refused "ARN with an 11-digit account" spec.cloud.aws.roleArn AgentIdentity \
  '{sponsor: a@example.com, cloud: {aws: {roleArn: "arn:aws:iam::12345678901:role/x"}}}'
refused "ARN of a user, not a role" spec.cloud.aws.roleArn AgentIdentity \
  '{sponsor: a@example.com, cloud: {aws: {roleArn: "arn:aws:iam::123456789012:user/x"}}}'
refused "ARN of another service" spec.cloud.aws.roleArn AgentIdentity \
  '{sponsor: a@example.com, cloud: {aws: {roleArn: "arn:aws:s3:::123456789012:role/x"}}}'
refused "aws without roleArn" spec.cloud.aws.roleArn AgentIdentity \
  '{sponsor: a@example.com, cloud: {aws: {audience: sts.amazonaws.com}}}'
refused "token lifetime under 600 s" spec.cloud.aws.tokenExpirationSeconds AgentIdentity \
  "{sponsor: a@example.com, cloud: {aws: {roleArn: \"$AWS\", tokenExpirationSeconds: 60}}}"
refused "bad clientId UUID" spec.cloud.azure.clientId AgentIdentity \
  '{sponsor: a@example.com, cloud: {azure: {clientId: 3f2b8c1e-7d4a-4e6b-9a0c}}}'
refused "bad tenantId UUID" spec.cloud.azure.tenantId AgentIdentity \
  "{sponsor: a@example.com, cloud: {azure: {clientId: $UUID, tenantId: not-a-uuid}}}"
refused "GCP account outside iam.gserviceaccount.com" spec.cloud.gcp.serviceAccount AgentIdentity \
  '{sponsor: a@example.com, cloud: {gcp: {serviceAccount: agent@gmail.com}}}'
refused "score 1001" spec.trust.initialScore AgentIdentity '{sponsor: a@example.com, trust: {initialScore: 1001}}'
refused "score -1" spec.trust.initialScore AgentIdentity '{sponsor: a@example.com, trust: {initialScore: -1}}'
refused "two clouds" spec.cloud AgentIdentity \
  "{sponsor: a@example.com, cloud: {aws: {roleArn: \"$AWS\"}, gcp: {serviceAccount: $GSA}}}"
refused "capability without resource" spec.capabilities AgentIdentity '{sponsor: a@example.com, capabilities: [read]}'
refused "key rotation every 10 s" spec.keyRotation.intervalSeconds AgentIdentity \
  '{sponsor: a@example.com, keyRotation: {intervalSeconds: 10}}'
refused "serviceAccountName not a DNS name" spec.serviceAccountName AgentIdentity \
  '{sponsor: a@example.com, serviceAccountName: Alpha_SA}'
refused "suspended as a string" spec.suspended AgentIdentity '{sponsor: a@example.com, suspended: "yes"}'

refused "unknown operator" spec.rules.condition.operator TrustPolicy "{rules: [$(rule trust_score approx 1)]}"
refused "unknown action" spec.rules.action TrustPolicy "{rules: [$(rule trust_score lt 1 r explode)]}"
refused "rule without value" spec.rules.condition.value TrustPolicy \
  '{rules: [{name: r, condition: {field: tier, operator: eq}, action: deny}]}'
refused "rule value an object" spec.rules.condition.value TrustPolicy "{rules: [$(rule tier eq '{a: 1}')]}"
refused "two rules with one name" 'spec.rules[1]' TrustPolicy \
  "{rules: [$(rule trust_score lt 1), $(rule trust_score lt 2)]}"
refused "minTrustScore 1001" spec.minTrustScore TrustPolicy '{minTrustScore: 1001}'
refused "quarantineBelow -5" spec.quarantineBelow TrustPolicy '{quarantineBelow: -5}'
refused "weight 1.5" spec.scoring.weights.policyCompliance TrustPolicy \
  '{scoring: {weights: {policyCompliance: 1.5, securityPosture: 0, outputQuality: 0, resourceEfficiency: 0, collaborationHealth: 0}}}'
refused "weights missing a dimension" spec.scoring.weights.collaborationHealth TrustPolicy \
  '{scoring: {weights: {policyCompliance: 0.25, securityPosture: 0.25, outputQuality: 0.25, resourceEfficiency: 0.25}}}'
refused "bad selector operator" spec.agentSelector.matchExpressions.operator TrustPolicy \
  '{agentSelector: {matchExpressions: [{key: team, operator: Like}]}}'
refused "bad required capability" spec.requiredCapabilities TrustPolicy '{requiredCapabilities: ["read data"]}'

accepted "GovCloud role ARN with a path" AgentIdentity \
  '{sponsor: a.b+agents@sub.example.co.uk, cloud: {aws: {roleArn: "arn:aws-us-gov:iam::123456789012:role/team/agent-1"}}}'
accepted "upper-case UUIDs" AgentIdentity \
  '{sponsor: a@example.com, cloud: {azure: {clientId: 3F2B8C1E-7D4A-4E6B-9A0C-5D1E2F3A4B5C, tenantId: 72F988BF-86F1-41AF-91AB-2D7CD011DB47}}}'
accepted "scores 0 and 1000, rotation 0 and 300 s" AgentIdentity \
  '{sponsor: a@example.com, trust: {initialScore: 0}, keyRotation: {intervalSeconds: 300}}'
accepted "empty cloud" AgentIdentity '{sponsor: a@example.com, cloud: {}}'
accepted "rule values: number, string, list, regex" TrustPolicy \
  "{rules: [$(rule trust_score lt 2.5 a), $(rule tier eq trusted b), $(rule tier in '[trusted, 1]' c), $(rule capabilities matches "'^read:.*'" d)]}"

kc -n "$NS" apply --validate=false -f - >/dev/null 2>&1 <<'EOF'
apiVersion: agentmesh.io/v1alpha1
kind: AgentIdentity
metadata: {name: pruned}
spec: {sponsor: a@example.com, bogus: 1, trust: {initialScore: 10, extra: true}}
EOF
check "unknown fields are pruned, known ones kept" \
  test "$(kc -n "$NS" get agid pruned -o json | jq -c '[.spec.bogus, .spec.trust]')" = '[null,{"initialScore":10}]'

# --- status subresource and printer columns -------------------------------------

status_patch() { out=$(kc -n "$NS" patch agid minimal --subresource=status --type=merge -p "$1" 2>&1); }
kc -n "$NS" patch agid minimal --type=merge -p '{"status":{"phase":"Revoked"}}' >/dev/null 2>&1
check "status written through the main resource is ignored" \
  test "$(kc -n "$NS" get agid minimal -o jsonpath='{.status.phase}')" != Revoked
if status_patch '{"status":{"phase":"Sleeping"}}'; then bad "status phase Sleeping accepted"; else
  check "status phase outside the enum refused naming status.phase" contains "$out" status.phase; fi
if status_patch '{"status":{"did":"did:mesh:XYZ"}}'; then bad "malformed DID accepted"; else
  check "malformed DID refused naming status.did" contains "$out" status.did; fi
if status_patch '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'; then bad "condition without reason accepted"; else
  check "condition without reason/lastTransitionTime refused" contains "$out" status.conditions; fi

status_patch '{"status":{"did":"did:mesh:00112233445566778899aabbccddeeff","tier":"standard","trustScore":512,
  "phase":"Active","conditions":[{"type":"Ready","status":"True","reason":"Test","message":"set by crds.sh",
  "lastTransitionTime":"2026-01-01T00:00:00Z"}]}}' || bad "status patch with DID, tier, score, phase refused: $out"
# A controller of another test may be reconciling this namespace as well and
# rewrite status at any moment: compare the table with the object read just
# before it, and trust the pair only if the object did not change meanwhile.
columns_show_status() {
  local obj rv
  obj=$(kc -n "$NS" get agid minimal -o json) || return 1
  table=$(kc -n "$NS" get agid minimal) || return 1
  rv=$(kc -n "$NS" get agid minimal -o jsonpath='{.metadata.resourceVersion}') || return 1
  [ "$rv" = "$(jq -r .metadata.resourceVersion <<<"$obj")" ] || return 1
  want=$(jq -r '.status | "\(.did) \(.tier) \(.trustScore) \(.phase)"' <<<"$obj")
  [[ "$want" != *null* ]] && [ "$(awk 'NR == 2 { print $2, $3, $4, $5 }' <<<"$table")" = "$want" ]
}
check "kubectl get agid shows DID, Tier, Score, Phase from status" wait_for 20 columns_show_status
check "header is NAME DID TIER SCORE PHASE AGE" \
  test "$(awk 'NR == 1' <<<"$table" | tr -s ' ')" = "NAME DID TIER SCORE PHASE AGE"
header() { kc -n "$NS" get "$@" | awk 'NR == 1' | tr -s ' '; }
check "-o wide adds SPONSOR and SERVICEACCOUNT" \
  test "$(header agid minimal -o wide)" = "NAME DID TIER SCORE PHASE SPONSOR SERVICEACCOUNT AGE"
check "kubectl get tp shows MINSCORE QUARANTINE REVOKE AGENTS AGE" \
  test "$(header tp strict)" = "NAME MINSCORE QUARANTINE REVOKE AGENTS AGE"

# --- kubectl explain --------------------------------------------------------------

check "kubectl explain agid.spec.cloud.aws.roleArn describes the field" \
  eval "kc explain agid.spec.cloud.aws.roleArn 2>&1 | grep 'eks.amazonaws.com/role-arn' >/dev/null"
check "kubectl explain tp.spec.rules.condition.operator lists the operators" \
  eval "kc explain tp.spec.rules.condition.operator 2>&1 | grep 'not_in' >/dev/null"
