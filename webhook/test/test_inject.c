/* test_inject.c — golden fixtures for sidecar injection.
 *
 * Every webhook/test/data/inject/<case>.case.json is one case:
 *   {"namespace", "namespaceLabels", "apiMinor", "skip", "warnings"}
 * with <case>.pod.json (the pod as the API server sends it), optionally
 * <case>.agent.json (the AgentIdentity the lookup found) and
 * <case>.patch.json (the exact expected patch). For each case the patch text
 * must be byte for byte the fixture's compact JSON, apply cleanly to the pod (RFC 6902, strict applier), leave a
 * well-formed pod (unique names, identity Secret only in the sidecar), and a
 * second run over the patched pod must produce an empty patch (reinvocation).
 * The cases run one after another through one inject_result, as the
 * webhook's loop threads reuse theirs, so a buffer carrying anything over
 * from the case before shows as a byte difference.
 * UPDATE_GOLDEN=1 rewrites the .patch.json files (review the diff!). */
#include "common/test/check_run.h"
#include "webhook/inject.h"

#include "common/json.h"
#include "webhook/test/jsonpatch_apply.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CASE_DIR TESTDATA_DIR "/inject"

static const struct inject_options base_opts = {
    .api_minor = 20,
    .operator_namespace = "agentmesh-system",
    .sidecar_image = "ghcr.io/agentmesh/agentmesh-sidecar:0.1.0",
    .controller_url = "https://agentmesh-controller.agentmesh-system.svc:8080",
};

static json_t *load(const char *name, const char *ext, int required) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.%s.json", CASE_DIR, name, ext);
    json_error_t e;
    json_t *v = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!v && required) ck_abort_msg("%s: %s", path, e.text);
    return v;
}

/* Names in `list` (array of objects with "name") are unique. */
static void assert_unique_names(const json_t *list, const char *what) {
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(list, i, a) json_array_foreach(list, j, b) {
        if (j <= i) continue;
        const char *na = json_string_value(json_object_get(a, "name"));
        const char *nb = json_string_value(json_object_get(b, "name"));
        ck_assert_msg(!na || !nb || strcmp(na, nb) != 0, "duplicate %s name %s", what, na);
    }
}

static int mounts_identity(const json_t *c) {
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(c, "volumeMounts"), i, m) {
        const char *n = json_string_value(json_object_get(m, "name"));
        if (n && strcmp(n, INJECT_IDENTITY_VOLUME) == 0) return 1;
    }
    return 0;
}

static void assert_well_formed(const json_t *pod) {
    const char *fields[] = {"containers", "initContainers"};
    assert_unique_names(json_at(pod, "spec.volumes"), "volume");
    json_t *all = json_array();
    for (int f = 0; f < 2; f++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(json_object_get(pod, "spec"), fields[f]), i, c) {
            json_array_append(all, c);
            assert_unique_names(json_object_get(c, "env"), "env");
            assert_unique_names(json_object_get(c, "volumeMounts"), "volumeMount");
            const char *n = json_string_value(json_object_get(c, "name"));
            if (mounts_identity(c))
                ck_assert_msg(n && strcmp(n, INJECT_SIDECAR_NAME) == 0,
                              "identity Secret mounted in app container %s", n);
        }
    }
    assert_unique_names(all, "container");
    json_decref(all);
}

static struct inject_options case_opts(const json_t *cs) {
    struct inject_options o = base_opts;
    o.api_minor = (int)json_int_at(cs, "apiMinor", base_opts.api_minor);
    return o;
}

static void write_golden(const char *name, const json_t *patch) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.patch.json", CASE_DIR, name);
    ck_assert_int_eq(json_dump_file(patch, path, JSON_INDENT(2)), 0);
}

/* The patch text as a tree; it must be one JSON array of `ops` operations. */
static json_t *parse_patch(const struct inject_result *r) {
    json_error_t e;
    ck_assert_uint_eq(strlen(r->patch), r->patch_len);
    json_t *p = json_loads(r->patch, JSON_REJECT_DUPLICATES, &e);
    ck_assert_msg(json_is_array(p), "patch is not a JSON array: %s: %s", e.text, r->patch);
    ck_assert_uint_eq(json_array_size(p), r->ops);
    return p;
}

static void run_case(const char *name, struct inject_result *shared) {
    json_t *cs = load(name, "case", 1), *pod = load(name, "pod", 1);
    json_t *agent = load(name, "agent", 0);
    struct inject_options o = case_opts(cs);
    struct inject_input in = {.pod = pod, .namespace = json_str_at(cs, "namespace"),
                              .namespace_labels = json_object_get(cs, "namespaceLabels"),
                              .identity = agent};
    struct inject_result *rp = shared, r;
    ck_assert_int_eq(inject_pod(&in, &o, rp), 0);
    r = *rp;
    json_t *patch = parse_patch(&r);

    if (getenv("UPDATE_GOLDEN")) write_golden(name, patch);
    json_t *want = load(name, "patch", 1);
    char *want_text = json_dumps(want, JSON_COMPACT);
    ck_assert_msg(strcmp(want_text, r.patch) == 0, "%s: patch differs, got:\n%s\nwant:\n%s", name,
                  r.patch, want_text);
    free(want_text);
    const char *skip = json_str_at(cs, "skip");
    ck_assert_msg(skip ? r.skip && strcmp(skip, r.skip) == 0 : r.skip == NULL,
                  "%s: skip %s, want %s", name, r.skip ? r.skip : "(none)", skip ? skip : "(none)");
    json_t *warnings = json_object_get(cs, "warnings"), *none = json_array();
    char *gotw = json_dumps(r.warnings, 0);
    ck_assert_msg(json_equal(warnings ? warnings : none, r.warnings), "%s: warnings %s", name, gotw);
    free(gotw);
    json_decref(none);

    char err[256] = "";
    json_t *patched = json_deep_copy(pod);
    ck_assert_msg(jp_apply(patched, patch, err, sizeof err) == 0, "%s: %s", name, err);
    assert_well_formed(patched);

    /* Reinvocation / re-submission: nothing more to add. */
    struct inject_result again = {0};
    in.pod = patched;
    ck_assert_int_eq(inject_pod(&in, &o, &again), 0);
    ck_assert_msg(again.ops == 0 && strcmp(again.patch, "[]") == 0, "%s: second run patched again",
                  name);
    if (!r.skip) ck_assert_str_eq(again.skip, INJECT_SKIP_ALREADY);

    inject_result_free(&again);
    json_decref(patch);
    json_decref(patched);
    json_decref(want);
    json_decref(cs);
    json_decref(pod);
    json_decref(agent);
}

START_TEST(golden_cases) {
    DIR *d = opendir(CASE_DIR);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct inject_result shared = {0};
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        const char *suffix = ".case.json";
        if (len <= strlen(suffix) || strcmp(e->d_name + len - strlen(suffix), suffix) != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - strlen(suffix)), e->d_name);
        run_case(name, &shared);
        n++;
    }
    closedir(d);
    inject_result_free(&shared);
    ck_assert_int_ge(n, 15);
}
END_TEST

/* The agent key: annotation first, else service account, else "default". */
START_TEST(agent_key) {
    int by_sa = -1;
    json_t *pod = json_pack("{s:{s:{s:s}}, s:{s:s}}", "metadata", "annotations",
                            INJECT_ANNOTATION_AGENT, "beta", "spec", "serviceAccountName", "sa1");
    ck_assert_str_eq(inject_agent_key(pod, &by_sa), "beta");
    ck_assert_int_eq(by_sa, 0);
    json_object_del(json_object_get(pod, "metadata"), "annotations");
    ck_assert_str_eq(inject_agent_key(pod, &by_sa), "sa1");
    ck_assert_int_eq(by_sa, 1);
    json_object_del(json_object_get(pod, "spec"), "serviceAccountName");
    ck_assert_str_eq(inject_agent_key(pod, &by_sa), "default");
    json_decref(pod);

    json_t *id = json_pack("{s:{s:s}, s:{}}", "metadata", "name", "alpha", "spec");
    ck_assert_str_eq(inject_identity_sa(id), "alpha");
    json_object_set_new(json_object_get(id, "spec"), "serviceAccountName", json_string("runner"));
    ck_assert_str_eq(inject_identity_sa(id), "runner");
    json_decref(id);
}
END_TEST

/* Keys with '/' and '~' are escaped in patch paths (RFC 6901). */
START_TEST(pointer_escaping) {
    json_t *pod = json_pack("{s:{s:s, s:{s:s}, s:{s:s}}, s:{s:[{s:s}]}}", "metadata", "name", "p",
                            "labels", "agentmesh.io/inject", "true", "annotations", "a~b/c", "x",
                            "spec", "containers", "name", "app");
    json_t *agent = json_pack("{s:{s:s}, s:{s:{s:{s:s}}}}", "metadata", "name", "alpha", "spec",
                              "cloud", "azure", "clientId", "00000000-0000-0000-0000-000000000000");
    struct inject_input in = {.pod = pod, .namespace = "ns", .identity = agent};
    struct inject_result r = {0};
    ck_assert_int_eq(inject_pod(&in, &base_opts, &r), 0);
    json_t *patch = parse_patch(&r);
    int saw_agent = 0, saw_azure = 0, saw_record = 0;
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op) {
        const char *p = json_string_value(json_object_get(op, "path"));
        saw_agent |= strcmp(p, "/metadata/labels/agentmesh.io~1agent") == 0;
        saw_azure |= strcmp(p, "/metadata/labels/azure.workload.identity~1use") == 0;
        saw_record |= strcmp(p, "/metadata/annotations/agentmesh.io~1injected") == 0;
    }
    ck_assert(saw_agent && saw_azure && saw_record);
    char err[128];
    ck_assert_int_eq(jp_apply(pod, patch, err, sizeof err), 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_at(pod, "metadata.labels"),
                                                       "azure.workload.identity/use")), "true");
    ck_assert_str_eq(json_string_value(json_object_get(json_at(pod, "metadata.annotations"),
                                                       "a~b/c")), "x");
    json_decref(patch);
    inject_result_free(&r);
    json_decref(pod);
    json_decref(agent);
}
END_TEST

/* The record annotation parses and lists what was added. */
START_TEST(record_annotation) {
    json_t *pod = json_pack("{s:{s:s, s:{s:s}}, s:{s:[{s:s}, {s:s}]}}", "metadata", "name", "p",
                            "labels", "agentmesh.io/inject", "true", "spec", "containers",
                            "name", "a", "name", "b");
    json_t *agent = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "status", "did",
                              "did:mesh:00112233445566778899aabbccddeeff");
    struct inject_input in = {.pod = pod, .namespace = "ns", .identity = agent};
    struct inject_result r = {0};
    struct inject_options o = base_opts;
    o.api_minor = 29;
    ck_assert_int_eq(inject_pod(&in, &o, &r), 0);
    json_t *patch = parse_patch(&r);
    char err[128];
    ck_assert_int_eq(jp_apply(pod, patch, err, sizeof err), 0);
    const char *text = json_string_value(
        json_object_get(json_at(pod, "metadata.annotations"), INJECT_ANNOTATION_RECORD));
    ck_assert_ptr_nonnull(text);
    json_t *rec = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(rec);
    ck_assert_str_eq(json_str_at(rec, "agent"), "alpha");
    ck_assert_str_eq(json_str_at(rec, "sidecar"), "native");
    ck_assert_int_eq(json_array_size(json_object_get(rec, "containers")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(rec, "env")), 3);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(rec, "volumes"), 0)),
                     INJECT_IDENTITY_VOLUME);
    json_decref(rec);
    json_decref(patch);
    inject_result_free(&r);
    json_decref(pod);
    json_decref(agent);
}
END_TEST

/* A warning naming a long non-ASCII container is cut at a character
 * boundary, so it stays valid text and the pod is still injected. */
START_TEST(warning_cuts_at_character) {
    char name[80];
    memset(name, 'a', 62);
    memcpy(name + 62, "\xc3\xa9tail", 7);   /* "é" straddles the 63-byte cut */
    json_t *pod = json_pack("{s:{s:{s:s}}, s:{s:[{s:s, s:[{s:s, s:s}]}]}}", "metadata", "labels",
                            "agentmesh.io/inject", "true", "spec", "containers", "name", name,
                            "env", "name", "AGENTMESH_PROXY_URL", "value", "http://mine");
    json_t *agent = json_pack("{s:{s:s}, s:{s:s}}", "metadata", "name", "alpha", "status", "did",
                              "did:mesh:00112233445566778899aabbccddeeff");
    ck_assert_ptr_nonnull(pod);
    struct inject_input in = {.pod = pod, .namespace = "ns", .identity = agent};
    struct inject_result r = {0};
    ck_assert_int_eq(inject_pod(&in, &base_opts, &r), 0);
    ck_assert_ptr_null(r.skip);
    ck_assert_uint_eq(json_array_size(r.warnings), 1);
    char want[160];
    snprintf(want, sizeof want, "container %.62s: env AGENTMESH_PROXY_URL already set, left unchanged",
             name);
    ck_assert_str_eq(json_string_value(json_array_get(r.warnings, 0)), want);
    inject_result_free(&r);
    json_decref(pod);
    json_decref(agent);
}
END_TEST

int main(void) {
    Suite *s = suite_create("inject");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, golden_cases);
    tcase_add_test(tc, agent_key);
    tcase_add_test(tc, pointer_escaping);
    tcase_add_test(tc, record_annotation);
    tcase_add_test(tc, warning_cuts_at_character);
    suite_add_tcase(s, tc);
    return check_run(s, CK_FORK_GETENV);
}
