/* validate.c — AgentIdentity and TrustPolicy admission checks (see validate.h).
 *
 * The patterns are the CRD's, as POSIX extended regexes compiled once. The
 * first problem found is reported; the checks run in the order of the spec
 * so a user fixing one field at a time sees them in reading order. */
#include "webhook/validate.h"

#include "common/json.h"
#include "controller/trust_policy.h"

#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum pattern { PAT_EMAIL, PAT_CAPABILITY, PAT_DNS_SUBDOMAIN, PAT_ARN, PAT_UUID, PAT_GCP_SA, PAT_N };

static const char *const pattern_src[PAT_N] = {
    [PAT_EMAIL] = "^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}$",
    [PAT_CAPABILITY] = "^[a-z][a-z0-9_.-]*:[A-Za-z0-9_.*/-]+(:[A-Za-z0-9_.*/-]+)?$",
    [PAT_DNS_SUBDOMAIN] = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    [PAT_ARN] = "^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
    [PAT_UUID] = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    [PAT_GCP_SA] = "^[a-z]([-a-z0-9]{0,28}[a-z0-9])?@[a-z][-a-z0-9]{4,28}[a-z0-9]\\.iam\\.gserviceaccount\\.com$",
};
static regex_t patterns[PAT_N];
static int patterns_ok;
static pthread_once_t patterns_once = PTHREAD_ONCE_INIT;

static void compile_patterns(void) {
    for (int i = 0; i < PAT_N; i++)
        if (regcomp(&patterns[i], pattern_src[i], REG_EXTENDED | REG_NOSUB) != 0) return;
    patterns_ok = 1;
}

static int matches(enum pattern p, const char *s) {
    pthread_once(&patterns_once, compile_patterns);
    return patterns_ok && regexec(&patterns[p], s, 0, NULL, 0) == 0;
}

/* The verdict under construction: only the first problem is kept. */
struct verdict {
    char *msg;
    size_t len;
    int denied;
};

static void deny(struct verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void deny(struct verdict *v, const char *fmt, ...) {
    if (v->denied) return;
    v->denied = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, v->len, fmt, ap);
    va_end(ap);
}

/* `n` must be a string (when present, or always if `required`) matching
 * pattern `p` (PAT_N: any) and at most `max` bytes. */
static const char *check_value(struct verdict *v, const json_t *n, const char *path, int required,
                               enum pattern p, size_t max) {
    static const char *const what[PAT_N] = {
        [PAT_EMAIL] = "an e-mail address",
        [PAT_CAPABILITY] = "action:resource[:qualifier]",
        [PAT_DNS_SUBDOMAIN] = "a DNS-1123 subdomain (lower-case name)",
        [PAT_ARN] = "an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)",
        [PAT_UUID] = "a UUID",
        [PAT_GCP_SA] = "a GCP service account e-mail (<name>@<project>.iam.gserviceaccount.com)",
    };
    if (!n) {
        if (required) deny(v, "%s: required", path);
        return NULL;
    }
    if (!json_is_string(n)) {
        deny(v, "%s: must be a string", path);
        return NULL;
    }
    const char *s = json_string_value(n);
    if (strlen(s) > max)
        deny(v, "%s: longer than %zu characters", path, max);
    else if (p != PAT_N && !matches(p, s))
        deny(v, "%s: \"%.100s\" is not %s", path, s, what[p]);
    return s;
}

static const char *check_str(struct verdict *v, const json_t *obj, const char *key, const char *path,
                             int required, enum pattern p, size_t max) {
    return check_value(v, json_object_get(obj, key), path, required, p, max);
}

/* Integer member in [lo, hi] when present. */
static void check_int(struct verdict *v, const json_t *obj, const char *key, const char *path,
                      long long lo, long long hi) {
    json_t *n = json_object_get(obj, key);
    if (!n) return;
    if (!json_is_integer(n)) {
        deny(v, "%s: must be an integer", path);
        return;
    }
    long long x = json_integer_value(n);
    if (x < lo || x > hi) deny(v, "%s: %lld is outside %lld..%lld", path, x, lo, hi);
}

static void check_bool(struct verdict *v, const json_t *obj, const char *key, const char *path) {
    json_t *n = json_object_get(obj, key);
    if (n && !json_is_boolean(n)) deny(v, "%s: must be true or false", path);
}

/* Member that must be an object when present; returns it or NULL. */
static const json_t *check_obj(struct verdict *v, const json_t *obj, const char *key,
                               const char *path) {
    json_t *n = json_object_get(obj, key);
    if (n && !json_is_object(n)) deny(v, "%s: must be an object", path);
    return json_is_object(n) ? n : NULL;
}

static void check_capabilities(struct verdict *v, const json_t *spec, const char *key,
                               const char *path) {
    json_t *caps = json_object_get(spec, key);
    if (!caps) return;
    if (!json_is_array(caps)) {
        deny(v, "%s: must be a list", path);
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(caps, i, c) {
        char p[96];
        snprintf(p, sizeof p, "%s[%zu]", path, i);
        check_value(v, c, p, 1, PAT_CAPABILITY, 253);
    }
}

static void check_cloud(struct verdict *v, const json_t *spec) {
    const json_t *cloud = check_obj(v, spec, "cloud", "spec.cloud");
    if (!cloud) return;
    const char *names[3];
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)cloud, k, val) {
        if (strcmp(k, "aws") != 0 && strcmp(k, "azure") != 0 && strcmp(k, "gcp") != 0) {
            deny(v, "spec.cloud.%.40s: unknown cloud (want aws, azure or gcp)", k);
            return;
        }
        names[n++] = k;
    }
    if (n > 1) {
        deny(v, "spec.cloud: at most one of aws, azure, gcp may be set (got %s and %s)", names[0],
             names[1]);
        return;
    }
    const json_t *aws = check_obj(v, cloud, "aws", "spec.cloud.aws");
    if (aws) {
        check_str(v, aws, "roleArn", "spec.cloud.aws.roleArn", 1, PAT_ARN, 2048);
        check_str(v, aws, "audience", "spec.cloud.aws.audience", 0, PAT_N, 256);
        check_bool(v, aws, "stsRegionalEndpoints", "spec.cloud.aws.stsRegionalEndpoints");
        check_int(v, aws, "tokenExpirationSeconds", "spec.cloud.aws.tokenExpirationSeconds", 600, 86400);
        check_bool(v, aws, "injectToken", "spec.cloud.aws.injectToken");
    }
    const json_t *azure = check_obj(v, cloud, "azure", "spec.cloud.azure");
    if (azure) {
        check_str(v, azure, "clientId", "spec.cloud.azure.clientId", 1, PAT_UUID, 36);
        check_str(v, azure, "tenantId", "spec.cloud.azure.tenantId", 0, PAT_UUID, 36);
    }
    const json_t *gcp = check_obj(v, cloud, "gcp", "spec.cloud.gcp");
    if (gcp) check_str(v, gcp, "serviceAccount", "spec.cloud.gcp.serviceAccount", 1, PAT_GCP_SA, 100);
}

/* spec.serviceAccountName, defaulting to metadata.name. */
static const char *effective_sa(const json_t *obj) {
    const char *sa = json_str_at(obj, "spec.serviceAccountName");
    return sa && sa[0] ? sa : json_str_at(obj, "metadata.name");
}

int validate_agent_identity(const json_t *obj, const json_t *old, char *msg, size_t msglen) {
    struct verdict v = {msg, msglen, 0};
    const json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        deny(&v, "spec: required");
        return 0;
    }
    check_str(&v, spec, "sponsor", "spec.sponsor", 1, PAT_EMAIL, 254);
    check_str(&v, spec, "description", "spec.description", 0, PAT_N, 1024);
    check_capabilities(&v, spec, "capabilities", "spec.capabilities");
    check_str(&v, spec, "serviceAccountName", "spec.serviceAccountName", 0, PAT_DNS_SUBDOMAIN, 253);
    const json_t *trust = check_obj(&v, spec, "trust", "spec.trust");
    check_int(&v, trust, "initialScore", "spec.trust.initialScore", 0, 1000);
    const json_t *rot = check_obj(&v, spec, "keyRotation", "spec.keyRotation");
    check_int(&v, rot, "intervalSeconds", "spec.keyRotation.intervalSeconds", 0, 31536000);
    long long every = json_int_at(rot, "intervalSeconds", 0);
    if (every > 0 && every < 300)
        deny(&v, "spec.keyRotation.intervalSeconds: %lld is under 300 (use 0 for never)", every);
    check_cloud(&v, spec);
    check_bool(&v, spec, "suspended", "spec.suspended");
    if (old && !v.denied) {
        const char *was = effective_sa(old), *now = effective_sa(obj);
        if (was && now && strcmp(was, now) != 0)
            deny(&v, "spec.serviceAccountName: immutable once set (was \"%.100s\", now \"%.100s\")",
                 was, now);
    }
    return !v.denied;
}

/* What the controller's parser cannot see: a threshold order. Everything
 * else — weights, rules, operators, values, regexes — is the parser's. */
int validate_trust_policy(const json_t *obj, char *msg, size_t msglen) {
    struct verdict v = {msg, msglen, 0};
    const json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        deny(&v, "spec: required");
        return 0;
    }
    char name[256];
    const char *ns = json_str_at(obj, "metadata.namespace"), *n = json_str_at(obj, "metadata.name");
    snprintf(name, sizeof name, "%s/%s", ns ? ns : "", n ? n : "");
    struct trust_policy p;
    if (trust_policy_parse(spec, name, &p, msg, msglen) != 0) return 0;
    if (json_object_get(spec, "revokeBelow") && json_object_get(spec, "quarantineBelow") &&
        p.revoke_below > p.quarantine_below)
        deny(&v, "spec.revokeBelow: %d is above spec.quarantineBelow (%d)", p.revoke_below,
             p.quarantine_below);
    trust_policy_free(&p);
    return !v.denied;
}

int validate_request(const char *kind, const char *operation, const json_t *obj,
                     const json_t *old, char *msg, size_t msglen) {
    if (strcmp(operation, "CREATE") != 0 && strcmp(operation, "UPDATE") != 0) return 1;
    if (strcmp(kind, "AgentIdentity") == 0)
        return validate_agent_identity(obj, strcmp(operation, "UPDATE") == 0 ? old : NULL, msg, msglen);
    if (strcmp(kind, "TrustPolicy") == 0) return validate_trust_policy(obj, msg, msglen);
    snprintf(msg, msglen, "kind: %.64s is not validated by agentmesh", kind);
    return 0;
}
