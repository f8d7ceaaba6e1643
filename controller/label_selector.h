/* label_selector.h — Kubernetes metav1.LabelSelector: parse, match, merge.
 *
 * Used by TrustPolicy.agentSelector (which AgentIdentities a policy covers),
 * network.allowFromNamespaces, the webhook and the reconciler. matchLabels
 * {k: v} is kept as the requirement "k In (v)", so a selector is one list of
 * requirements that must all hold — which makes merging two selectors (the
 * strictest combination) a plain concatenation. Semantics follow
 * apimachinery: NotIn and DoesNotExist hold when the key is absent; an empty
 * selector matches everything. */
#ifndef AGENTMESH_LABEL_SELECTOR_H
#define AGENTMESH_LABEL_SELECTOR_H

#include <jansson.h>
#include <stddef.h>

enum label_op { LABEL_IN, LABEL_NOT_IN, LABEL_EXISTS, LABEL_DOES_NOT_EXIST };

struct label_requirement {
    char *key;
    enum label_op op;
    char **values;          /* In/NotIn: ≥ 1 value; Exists/DoesNotExist: none */
    size_t nvalues;
};

struct label_selector {
    struct label_requirement *reqs;
    size_t nreqs;
};

/* Parses a LabelSelector object. `sel` NULL or {} gives the empty selector
 * (matches all). `field` prefixes error messages ("spec.agentSelector"), e.g.
 * "spec.agentSelector.matchExpressions[0].operator: unknown operator \"Foo\"".
 * 0, or -1 with *out left empty. */
int label_selector_parse(const json_t *sel, const char *field, struct label_selector *out,
                         char *err, size_t errlen);

/* 1 when `labels` (a JSON object of string values, or NULL = no labels) satisfies every requirement. */
int label_selector_matches(const struct label_selector *sel, const json_t *labels);

/* Appends copies of src's requirements to dst (AND of both). 0 or -1 on OOM. */
int label_selector_merge(struct label_selector *dst, const struct label_selector *src);

/* {"matchExpressions": [...]} for a NetworkPolicy selector (new reference), NULL on OOM.
 * The empty selector gives {}. */
json_t *label_selector_to_json(const struct label_selector *sel);


void label_selector_free(struct label_selector *sel);

#endif
