/* Unit tests for the scheduler: every filter and score as a table of (nodes, existing pods,
 * incoming pod) -> expected reason or raw score; requests, the fit message, node sampling, fair
 * tie breaking, the queue's backoff and event-driven moves, preemption victim choice, the map.
 * Objects are written as JSON with single quotes (turned into double quotes by js()). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/util.h"
#include "scheduler/sched.h"

/* table rows leave trailing fields (unresolvable) at their zero default */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static json_t *js(const char *text)
{
    char *t = xstrdup(text);
    for (char *p = t; *p; p++)
        if (*p == '\'')
            *p = '"';
    json_error_t e;
    json_t *j = json_loads(t, 0, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    free(t);
    return j;
}

static sc_pod *pod(const char *text)
{
    json_t *j = js(text);
    ck_error *err = NULL;
    sc_pod *p = sc_pod_new(j, &err);
    json_decref(j);
    if (!p)
        fail_msg("pod: %s", err->msg);
    return p;
}

/* nodes: JSON array of nodes; pods: JSON array of assigned pods (spec.nodeName set). */
static void build(sc_cache *c, const char *nodes, const char *pods)
{
    sc_cache_init(c);
    json_t *arr = js(nodes ? nodes : "[]");
    size_t i;
    json_t *n;
    json_array_foreach(arr, i, n)
        assert_int_equal(sc_cache_node_set(c, n, NULL), 0);
    json_decref(arr);
    arr = js(pods ? pods : "[]");
    json_array_foreach(arr, i, n) {
        ck_error *err = NULL;
        sc_pod *p = sc_pod_new(n, &err);
        assert_non_null(p);
        sc_cache_pod_set(c, p);
    }
    json_decref(arr);
}

#define NODE(name, labels, extra) \
    "{'metadata':{'name':'" name "','labels':{'kubernetes.io/hostname':'" name "'" labels "}}," \
    "'spec':{" extra "},'status':{'allocatable':{'cpu':'4','memory':'8Gi','pods':'10'," \
    "'ephemeral-storage':'10Gi','example.com/gpu':'1'}," \
    "'conditions':[{'type':'Ready','status':'True'}]}}"
#define NODE_NOTREADY(name) \
    "{'metadata':{'name':'" name "'},'status':{'allocatable':{'cpu':'4','memory':'8Gi','pods':'10'}," \
    "'conditions':[{'type':'Ready','status':'False'}]}}"
#define POD(name, labels, spec) \
    "{'metadata':{'name':'" name "','namespace':'default','uid':'u-" name "','labels':{" labels "}}," \
    "'spec':{'containers':[{'name':'c','image':'i'}]" spec "}}"
#define CPOD(name, labels, req, spec) \
    "{'metadata':{'name':'" name "','namespace':'default','uid':'u-" name "','labels':{" labels "}}," \
    "'spec':{'containers':[{'name':'c','image':'i','resources':{'requests':{" req "}}}]" spec "}}"
#define ON(node) ",'nodeName':'" node "'"

typedef void (*filter_fn)(const sc_cycle *, const sc_node *, sc_status *);

static const struct filter_case {
    const char *what;
    filter_fn fn;
    const char *nodes, *pods, *pod, *node;
    const char *want;              /* "" = fits */
    bool unresolvable;
} filter_cases[] = {
    {"schedulable node", sc_filter_unschedulable, "[" NODE("n1", "", "") "]", NULL, POD("p", "", ""), "n1", ""},
    {"cordoned node", sc_filter_unschedulable, "[" NODE("n1", "", "'unschedulable':true") "]", NULL,
     POD("p", "", ""), "n1", "node(s) were unschedulable", true},
    {"cordoned node, tolerated", sc_filter_unschedulable, "[" NODE("n1", "", "'unschedulable':true") "]", NULL,
     POD("p", "", ",'tolerations':[{'key':'node.kubernetes.io/unschedulable','operator':'Exists','effect':'NoSchedule'}]"),
     "n1", ""},
    {"nodeName other node", sc_filter_node_name, "[" NODE("n1", "", "") "]", NULL, POD("p", "", ON("n2")), "n1",
     "node(s) didn't match the requested node name", true},
    {"nodeName this node", sc_filter_node_name, "[" NODE("n1", "", "") "]", NULL, POD("p", "", ON("n1")), "n1", ""},
    {"NoSchedule taint", sc_filter_taints, "[" NODE("n1", "", "'taints':[{'key':'k','value':'v','effect':'NoSchedule'}]") "]",
     NULL, POD("p", "", ""), "n1", "node(s) had untolerated taint {k: v}", true},
    {"NoExecute taint", sc_filter_taints, "[" NODE("n1", "", "'taints':[{'key':'k','effect':'NoExecute'}]") "]",
     NULL, POD("p", "", ""), "n1", "node(s) had untolerated taint {k: }", true},
    {"PreferNoSchedule taint does not filter", sc_filter_taints,
     "[" NODE("n1", "", "'taints':[{'key':'k','value':'v','effect':'PreferNoSchedule'}]") "]", NULL, POD("p", "", ""), "n1", ""},
    {"taint tolerated Equal", sc_filter_taints, "[" NODE("n1", "", "'taints':[{'key':'k','value':'v','effect':'NoSchedule'}]") "]",
     NULL, POD("p", "", ",'tolerations':[{'key':'k','operator':'Equal','value':'v','effect':'NoSchedule'}]"), "n1", ""},
    {"taint toleration wrong value", sc_filter_taints, "[" NODE("n1", "", "'taints':[{'key':'k','value':'v','effect':'NoSchedule'}]") "]",
     NULL, POD("p", "", ",'tolerations':[{'key':'k','value':'w'}]"), "n1", "node(s) had untolerated taint {k: v}", true},
    {"taint tolerated by Exists without key", sc_filter_taints,
     "[" NODE("n1", "", "'taints':[{'key':'k','value':'v','effect':'NoExecute'}]") "]", NULL,
     POD("p", "", ",'tolerations':[{'operator':'Exists'}]"), "n1", ""},
    {"not ready node is tainted", sc_filter_taints, "[" NODE_NOTREADY("n1") "]", NULL, POD("p", "", ""), "n1",
     "node(s) had untolerated taint {node.kubernetes.io/not-ready: }", true},
    {"nodeSelector match", sc_filter_node_affinity, "[" NODE("n1", ",'disk':'ssd'", "") "]", NULL,
     POD("p", "", ",'nodeSelector':{'disk':'ssd'}"), "n1", ""},
    {"nodeSelector mismatch", sc_filter_node_affinity, "[" NODE("n1", ",'disk':'hdd'", "") "]", NULL,
     POD("p", "", ",'nodeSelector':{'disk':'ssd'}"), "n1", "node(s) didn't match Pod's node affinity/selector", true},
#define NA(expr) ",'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':[{'matchExpressions':[" expr "]}]}}}"
    {"affinity In", sc_filter_node_affinity, "[" NODE("n1", ",'zone':'a'", "") "]", NULL,
     POD("p", "", NA("{'key':'zone','operator':'In','values':['a','b']}")), "n1", ""},
    {"affinity In miss", sc_filter_node_affinity, "[" NODE("n1", ",'zone':'c'", "") "]", NULL,
     POD("p", "", NA("{'key':'zone','operator':'In','values':['a','b']}")), "n1",
     "node(s) didn't match Pod's node affinity/selector", true},
    {"affinity NotIn", sc_filter_node_affinity, "[" NODE("n1", ",'zone':'c'", "") "]", NULL,
     POD("p", "", NA("{'key':'zone','operator':'NotIn','values':['a']}")), "n1", ""},
    {"affinity Exists miss", sc_filter_node_affinity, "[" NODE("n1", "", "") "]", NULL,
     POD("p", "", NA("{'key':'gpu','operator':'Exists'}")), "n1", "node(s) didn't match Pod's node affinity/selector", true},
    {"affinity DoesNotExist", sc_filter_node_affinity, "[" NODE("n1", "", "") "]", NULL,
     POD("p", "", NA("{'key':'gpu','operator':'DoesNotExist'}")), "n1", ""},
    {"affinity Gt", sc_filter_node_affinity, "[" NODE("n1", ",'cores':'16'", "") "]", NULL,
     POD("p", "", NA("{'key':'cores','operator':'Gt','values':['8']}")), "n1", ""},
    {"affinity Lt miss", sc_filter_node_affinity, "[" NODE("n1", ",'cores':'16'", "") "]", NULL,
     POD("p", "", NA("{'key':'cores','operator':'Lt','values':['8']}")), "n1",
     "node(s) didn't match Pod's node affinity/selector", true},
    {"affinity matchFields name", sc_filter_node_affinity, "[" NODE("n1", "", "") "]", NULL,
     POD("p", "", ",'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':"
                  "[{'matchFields':[{'key':'metadata.name','operator':'In','values':['n1']}]}]}}}"), "n1", ""},
    {"affinity terms are ORed", sc_filter_node_affinity, "[" NODE("n1", ",'zone':'b'", "") "]", NULL,
     POD("p", "", ",'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':"
                  "[{'matchExpressions':[{'key':'zone','operator':'In','values':['a']}]},"
                  "{'matchExpressions':[{'key':'zone','operator':'In','values':['b']}]}]}}}"), "n1", ""},
#define HPS(port) "'containers':[{'name':'c','image':'i','ports':[{'containerPort':80,'hostPort':" port "}]}]"
#define HP(port) "," HPS(port)
    {"host port free", sc_filter_ports, "[" NODE("n1", "", "") "]",
     "[{'metadata':{'name':'e','namespace':'default'},'spec':{'nodeName':'n1'" HP("8080") "}}]",
     "{'metadata':{'name':'p','namespace':'default'},'spec':{" HPS("8081") "}}", "n1", ""},
    {"host port taken", sc_filter_ports, "[" NODE("n1", "", "") "]",
     "[{'metadata':{'name':'e','namespace':'default'},'spec':{'nodeName':'n1'" HP("8080") "}}]",
     "{'metadata':{'name':'p','namespace':'default'},'spec':{" HPS("8080") "}}", "n1",
     "node(s) didn't have free ports for the requested pod ports"},
    {"cpu fits", sc_filter_resources, "[" NODE("n1", "", "") "]", "[" CPOD("e", "", "'cpu':'3'", ON("n1")) "]",
     CPOD("p", "", "'cpu':'1'", ""), "n1", ""},
    {"cpu insufficient", sc_filter_resources, "[" NODE("n1", "", "") "]", "[" CPOD("e", "", "'cpu':'3'", ON("n1")) "]",
     CPOD("p", "", "'cpu':'1001m'", ""), "n1", "Insufficient cpu"},
    {"memory insufficient", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     CPOD("p", "", "'memory':'9Gi'", ""), "n1", "Insufficient memory"},
    {"ephemeral-storage insufficient", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     CPOD("p", "", "'ephemeral-storage':'11Gi'", ""), "n1", "Insufficient ephemeral-storage"},
    {"extended resource insufficient", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     CPOD("p", "", "'example.com/gpu':'2'", ""), "n1", "Insufficient example.com/gpu"},
    {"extended resource fits", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     CPOD("p", "", "'example.com/gpu':'1'", ""), "n1", ""},
    {"init container counted", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     "{'metadata':{'name':'p'},'spec':{'containers':[{'name':'c','resources':{'requests':{'cpu':'1'}}}],"
     "'initContainers':[{'name':'i','resources':{'requests':{'cpu':'5'}}}]}}", "n1", "Insufficient cpu"},
    {"limits stand in for requests", sc_filter_resources, "[" NODE("n1", "", "") "]", NULL,
     "{'metadata':{'name':'p'},'spec':{'containers':[{'name':'c','resources':{'limits':{'cpu':'5'}}}]}}", "n1",
     "Insufficient cpu"},
    {"too many pods", sc_filter_resources,
     "[{'metadata':{'name':'n1'},'status':{'allocatable':{'cpu':'4','memory':'1Gi','pods':'1'},"
     "'conditions':[{'type':'Ready','status':'True'}]}}]",
     "[" POD("e", "", ON("n1")) "]", POD("p", "", ""), "n1", "Too many pods"},
#define SPREAD(skew, when) ",'topologySpreadConstraints':[{'maxSkew':" skew ",'topologyKey':'zone','whenUnsatisfiable':'" when "','labelSelector':{'matchLabels':{'app':'w'}}}]"
    {"spread within skew", sc_filter_spread, "[" NODE("n1", ",'zone':'a'", "") "," NODE("n2", ",'zone':'b'", "") "]",
     "[" POD("e1", "'app':'w'", ON("n1")) "]", POD("p", "'app':'w'", SPREAD("1", "DoNotSchedule")), "n2", ""},
    {"spread skew exceeded", sc_filter_spread, "[" NODE("n1", ",'zone':'a'", "") "," NODE("n2", ",'zone':'b'", "") "]",
     "[" POD("e1", "'app':'w'", ON("n1")) "]", POD("p", "'app':'w'", SPREAD("1", "DoNotSchedule")), "n1",
     "node(s) didn't match pod topology spread constraints"},
    {"spread missing label", sc_filter_spread, "[" NODE("n1", ",'zone':'a'", "") "," NODE("n2", "", "") "]",
     NULL, POD("p", "'app':'w'", SPREAD("1", "DoNotSchedule")), "n2",
     "node(s) didn't match pod topology spread constraints (missing required label)", true},
    {"spread ScheduleAnyway does not filter", sc_filter_spread, "[" NODE("n1", ",'zone':'a'", "") "," NODE("n2", ",'zone':'b'", "") "]",
     "[" POD("e1", "'app':'w'", ON("n1")) "]", POD("p", "'app':'w'", SPREAD("1", "ScheduleAnyway")), "n1", ""},
#define PA(kind, labels) ",'affinity':{'" kind "':{'requiredDuringSchedulingIgnoredDuringExecution':[{'labelSelector':{'matchLabels':{" labels "}},'topologyKey':'kubernetes.io/hostname'}]}}"
    {"pod affinity satisfied", sc_filter_pod_affinity, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
     "[" POD("db", "'app':'db'", ON("n1")) "]", POD("p", "", PA("podAffinity", "'app':'db'")), "n1", ""},
    {"pod affinity unmet", sc_filter_pod_affinity, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
     "[" POD("db", "'app':'db'", ON("n1")) "]", POD("p", "", PA("podAffinity", "'app':'db'")), "n2",
     "node(s) didn't match pod affinity rules", true},
    {"pod affinity first of its group", sc_filter_pod_affinity, "[" NODE("n1", "", "") "]", NULL,
     POD("p", "'app':'web'", PA("podAffinity", "'app':'web'")), "n1", ""},
    {"pod anti-affinity violated", sc_filter_pod_affinity, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
     "[" POD("w1", "'app':'web'", ON("n1")) "]", POD("p", "'app':'web'", PA("podAntiAffinity", "'app':'web'")), "n1",
     "node(s) didn't match pod anti-affinity rules"},
    {"pod anti-affinity elsewhere ok", sc_filter_pod_affinity, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
     "[" POD("w1", "'app':'web'", ON("n1")) "]", POD("p", "'app':'web'", PA("podAntiAffinity", "'app':'web'")), "n2", ""},
    {"existing pod's anti-affinity", sc_filter_pod_affinity, "[" NODE("n1", "", "") "]",
     "[" POD("w1", "'app':'x'", ON("n1") PA("podAntiAffinity", "'app':'web'")) "]", POD("p", "'app':'web'", ""), "n1",
     "node(s) didn't satisfy existing pods anti-affinity rules"},
    {"anti-affinity other namespace ignored", sc_filter_pod_affinity, "[" NODE("n1", "", "") "]",
     "[{'metadata':{'name':'w1','namespace':'other','labels':{'app':'web'}},'spec':{'nodeName':'n1'}}]",
     POD("p", "'app':'web'", PA("podAntiAffinity", "'app':'web'")), "n1", ""},
};

static void test_filters(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(filter_cases); i++) {
        const struct filter_case *tc = &filter_cases[i];
        sc_cache c;
        build(&c, tc->nodes, tc->pods);
        sc_pod *p = pod(tc->pod);
        sc_node *n = sc_cache_node(&c, tc->node);
        assert_non_null(n);
        sc_cycle cy;
        sc_cycle_prepare(&cy, &c, p);
        sc_status st = {0};
        tc->fn(&cy, n, &st);
        const char *got = st.plugin ? st.reasons[0] : "";
        if (strcmp(got, tc->want) || (st.plugin && st.unresolvable != tc->unresolvable))
            fail_msg("%s: got \"%s\" (unresolvable %d), want \"%s\"", tc->what, got, st.unresolvable,
                     tc->want);
        /* the whole chain agrees with the single filter on a failure */
        sc_filter(&cy, n, &st);
        if (*tc->want && (!st.plugin || strcmp(st.reasons[0], tc->want)))
            fail_msg("%s: chain gave \"%s\"", tc->what, st.plugin ? st.reasons[0] : "");
        sc_cycle_release(&cy);
        sc_pod_free(p);
        sc_cache_destroy(&c);
    }
}

enum { F_LEAST, F_BAL, F_NAFF, F_TAINT, F_SPREAD, F_PAFF };
static const struct score_case {
    const char *what;
    int fn;
    const char *nodes, *pods, *pod, *node;
    int64_t want;
} score_cases[] = {
    {"least allocated, empty node", F_LEAST, "[" NODE("n1", "", "") "]", NULL, CPOD("p", "", "'cpu':'1','memory':'2Gi'", ""), "n1", 75},
    {"least allocated, half used", F_LEAST, "[" NODE("n1", "", "") "]",
     "[" CPOD("e", "", "'cpu':'1','memory':'2Gi'", ON("n1")) "]", CPOD("p", "", "'cpu':'1','memory':'2Gi'", ""), "n1", 50},
    {"least allocated, best effort uses defaults", F_LEAST, "[" NODE("n1", "", "") "]", NULL, POD("p", "", ""), "n1", 97},
    {"balanced, equal fractions", F_BAL, "[" NODE("n1", "", "") "]", NULL, CPOD("p", "", "'cpu':'2','memory':'4Gi'", ""), "n1", 100},
    /* cpu full, memory at the 200Mi default: std (1 - 0.024) / 2 */
    {"balanced, skewed", F_BAL, "[" NODE("n1", "", "") "]", NULL, CPOD("p", "", "'cpu':'4','memory':'0'", ""), "n1", 51},
    {"node affinity preferred weights", F_NAFF, "[" NODE("n1", ",'zone':'a','disk':'ssd'", "") "]", NULL,
     POD("p", "", ",'affinity':{'nodeAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':["
                  "{'weight':5,'preference':{'matchExpressions':[{'key':'zone','operator':'In','values':['a']}]}},"
                  "{'weight':7,'preference':{'matchExpressions':[{'key':'disk','operator':'In','values':['ssd']}]}},"
                  "{'weight':11,'preference':{'matchExpressions':[{'key':'gpu','operator':'Exists'}]}}]}}"), "n1", 12},
    {"PreferNoSchedule taints counted", F_TAINT,
     "[" NODE("n1", "", "'taints':[{'key':'a','effect':'PreferNoSchedule'},{'key':'b','effect':'PreferNoSchedule'},{'key':'c','effect':'NoSchedule'}]") "]",
     NULL, POD("p", "", ",'tolerations':[{'key':'a','operator':'Exists'}]"), "n1", 1},
    {"soft spread counts matching pods in the domain", F_SPREAD,
     "[" NODE("n1", ",'zone':'a'", "") "," NODE("n2", ",'zone':'a'", "") "]",
     "[" POD("e1", "'app':'w'", ON("n1")) "," POD("e2", "'app':'w'", ON("n2")) "," POD("e3", "'app':'x'", ON("n2")) "]",
     POD("p", "'app':'w'", SPREAD("1", "ScheduleAnyway")), "n1", 2},
    {"preferred pod affinity weight", F_PAFF, "[" NODE("n1", "", "") "]", "[" POD("db", "'app':'db'", ON("n1")) "]",
     POD("p", "", ",'affinity':{'podAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':30,"
                  "'podAffinityTerm':{'labelSelector':{'matchLabels':{'app':'db'}},'topologyKey':'kubernetes.io/hostname'}}]}}"),
     "n1", 30},
    {"preferred pod anti-affinity weight", F_PAFF, "[" NODE("n1", "", "") "]", "[" POD("db", "'app':'db'", ON("n1")) "]",
     POD("p", "", ",'affinity':{'podAntiAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':[{'weight':20,"
                  "'podAffinityTerm':{'labelSelector':{'matchLabels':{'app':'db'}},'topologyKey':'kubernetes.io/hostname'}}]}}"),
     "n1", -20},
};

static void test_scores(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(score_cases); i++) {
        const struct score_case *tc = &score_cases[i];
        sc_cache c;
        build(&c, tc->nodes, tc->pods);
        sc_pod *p = pod(tc->pod);
        sc_node *n = sc_cache_node(&c, tc->node);
        sc_cycle cy;
        sc_cycle_prepare(&cy, &c, p);
        int64_t got = 0;
        switch (tc->fn) {
        case F_LEAST: got = sc_score_least_allocated(p, n); break;
        case F_BAL: got = sc_score_balanced(p, n); break;
        case F_NAFF: got = sc_score_node_affinity_raw(p, n); break;
        case F_TAINT: got = sc_score_taint_raw(p, n); break;
        case F_SPREAD: got = sc_score_spread_raw(&cy, n); break;
        case F_PAFF: got = sc_score_pod_affinity_raw(&cy, n); break;
        }
        if (got != tc->want)
            fail_msg("%s: got %lld want %lld", tc->what, (long long)got, (long long)tc->want);
        sc_cycle_release(&cy);
        sc_pod_free(p);
        sc_cache_destroy(&c);
    }
}

/* Whole cycles: the chosen node follows the scores. */
static void test_schedule_prefers(void **state)
{
    sc_cache c;
    build(&c, "[" NODE("busy", "", "") "," NODE("idle", "", "") "," NODE("tainted", "", "'taints':[{'key':'t','effect':'PreferNoSchedule'}]") "]",
          "[" CPOD("e", "", "'cpu':'3','memory':'6Gi'", ON("busy")) "]");
    sc_algo a = {.rng = 42};
    for (int i = 0; i < 20; i++) {
        sc_pod *p = pod(CPOD("p", "", "'cpu':'100m'", ""));
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        assert_non_null(r.node);
        assert_string_equal(r.node->name, "idle");
        sc_result_release(&r);
        sc_pod_free(p);
    }
    sc_cache_destroy(&c);
}

/* Equal nodes: the winner is drawn at random, not always the first. */
static void test_ties_are_fair(void **state)
{
    const char *nodes = "[" NODE("a", "", "") "," NODE("b", "", "") "," NODE("c", "", "") "," NODE("d", "", "") "]";
    sc_cache c;
    build(&c, nodes, NULL);
    sc_algo a = {.rng = 7};
    int hits[4] = {0};
    for (int i = 0; i < 400; i++) {
        sc_pod *p = pod(POD("p", "", ""));
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        assert_non_null(r.node);
        hits[r.node->name[0] - 'a']++;
        sc_result_release(&r);
        sc_pod_free(p);
    }
    for (int k = 0; k < 4; k++)
        if (hits[k] < 60)
            fail_msg("node %c chosen %d/400 times", 'a' + k, hits[k]);
    sc_cache_destroy(&c);
}

/* Assumed pods count at once: 4 one-cpu pods fill a 4-cpu node, the fifth fails. */
static void test_assume_and_message(void **state)
{
    sc_cache c;
    build(&c, "[" NODE("n1", "", "") "," NODE("n2", "", "'taints':[{'key':'k','value':'v','effect':'NoSchedule'}]") "]", NULL);
    sc_algo a = {0};
    for (int i = 0; i < 5; i++) {
        char name[32], text[512];
        snprintf(name, sizeof name, "p%d", i);
        snprintf(text, sizeof text,
                 "{'metadata':{'name':'%s','namespace':'default'},'spec':{'containers':[{'name':'c',"
                 "'resources':{'requests':{'cpu':'1'}}}]}}", name);
        sc_pod *p = pod(text);
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        if (i < 4) {
            assert_non_null(r.node);
            assert_string_equal(r.node->name, "n1");
            sc_cache_assume(&c, p, "n1");
        } else {
            assert_null(r.node);
            char *m = sc_fit_message(&r);
            assert_string_equal(m, "0/2 nodes are available: 1 Insufficient cpu, "
                                   "1 node(s) had untolerated taint {k: v}.");
            free(m);
            assert_int_equal(r.n_unresolvable, 1);
            assert_int_equal(r.nresolvable, 1);
            sc_pod_free(p);
        }
        sc_result_release(&r);
    }
    assert_int_equal(sc_cache_node(&c, "n1")->used.cpu, 4000);
    sc_cache_pod_del(&c, "default/p0");
    assert_int_equal(sc_cache_node(&c, "n1")->used.cpu, 3000);
    sc_cache_destroy(&c);

    sc_result none = {.nnodes = 0};
    char *m = sc_fit_message(&none);
    assert_string_equal(m, "no nodes available to schedule pods");
    free(m);
}

static void test_requests(void **state)
{
    static const struct {
        const char *spec;
        int64_t cpu, mem;
    } cases[] = {
        {"'containers':[{'name':'a','resources':{'requests':{'cpu':'100m','memory':'1Mi'}}},"
         "{'name':'b','resources':{'requests':{'cpu':'200m'}}}]", 300, 1048576},
        {"'containers':[{'name':'a','resources':{'requests':{'cpu':'1'}}}],"
         "'initContainers':[{'name':'i','resources':{'requests':{'cpu':'2'}}}]", 2000, 0},
        /* a sidecar (restartable init container) runs beside the containers */
        {"'containers':[{'name':'a','resources':{'requests':{'cpu':'1'}}}],"
         "'initContainers':[{'name':'s','restartPolicy':'Always','resources':{'requests':{'cpu':'500m'}}},"
         "{'name':'i','resources':{'requests':{'cpu':'1'}}}]", 1500, 0},
        {"'containers':[{'name':'a','resources':{'requests':{'cpu':'1'}}}],'overhead':{'cpu':'250m'}", 1250, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char text[1024];
        snprintf(text, sizeof text, "{'metadata':{'name':'p'},'spec':{%s}}", cases[i].spec);
        sc_pod *p = pod(text);
        if (p->req.cpu != cases[i].cpu || p->req.mem != cases[i].mem)
            fail_msg("case %zu: cpu %lld mem %lld", i, (long long)p->req.cpu, (long long)p->req.mem);
        sc_pod_free(p);
    }
}

static void test_num_to_find(void **state)
{
    assert_int_equal(sc_num_to_find(50, 0), 50);
    assert_int_equal(sc_num_to_find(100, 0), 100);        /* 49% of 100 -> 49 -> at least 100 */
    assert_int_equal(sc_num_to_find(1000, 0), 420);       /* 50 - 8 = 42% */
    assert_int_equal(sc_num_to_find(5000, 0), 500);       /* 50 - 40 = 10% */
    assert_int_equal(sc_num_to_find(10000, 0), 500);      /* floor of 5% */
    assert_int_equal(sc_num_to_find(5000, 100), 5000);
}

/* Sampling rotates: over cycles every node gets filtered. */
static void test_sampling_rotates(void **state)
{
    ck_buf b;
    ck_buf_init(&b, 0);
    ck_buf_addstr(&b, "[");
    for (int i = 0; i < 300; i++)
        ck_buf_printf(&b, "%s{'metadata':{'name':'n%d'},'status':{'allocatable':{'cpu':'4','memory':'1Gi','pods':'10'},"
                      "'conditions':[{'type':'Ready','status':'True'}]}}", i ? "," : "", i);
    ck_buf_addstr(&b, "]");
    sc_cache c;
    build(&c, b.data, NULL);
    ck_buf_free(&b);
    sc_algo a = {.percentage = 0};
    sc_pod *p = pod(POD("p", "", ""));
    sc_result r;
    sc_schedule(&a, &c, p, &r);
    assert_int_equal(r.evaluated, 144);     /* 50% - 300/125 = 48% of 300 */
    assert_int_equal(a.next_start, 144);
    sc_result_release(&r);
    sc_schedule(&a, &c, p, &r);
    assert_int_equal(a.next_start, 288);
    sc_result_release(&r);
    sc_schedule(&a, &c, p, &r);
    assert_int_equal(a.next_start, 132);    /* wrapped around */
    sc_result_release(&r);
    sc_pod_free(p);
    sc_cache_destroy(&c);
}

static void test_preemption(void **state)
{
    sc_cache c;
    build(&c, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
          "[" CPOD("low1", "", "'cpu':'2'", ON("n1") ",'priority':10") "," CPOD("low2", "", "'cpu':'2'", ON("n1") ",'priority':10")
          "," CPOD("mid", "", "'cpu':'3'", ON("n2") ",'priority':500") "," CPOD("low3", "", "'cpu':'1'", ON("n2") ",'priority':10") "]");
    sc_algo a = {0};
    sc_pod *p = pod(CPOD("vip", "", "'cpu':'2'", ",'priority':1000"));
    sc_result r;
    sc_schedule(&a, &c, p, &r);
    assert_null(r.node);
    sc_preemption pr;
    sc_preempt(&c, p, &r, &pr);
    /* n1 loses one priority-10 pod; n2 would lose the priority-500 pod */
    assert_non_null(pr.node);
    assert_string_equal(pr.node->name, "n1");
    assert_int_equal(pr.nvictims, 1);
    assert_int_equal(pr.victims[0]->priority, 10);
    assert_int_equal(sc_cache_node(&c, "n1")->used.cpu, 4000);      /* simulation undone */
    sc_preemption_release(&pr);
    sc_result_release(&r);
    sc_pod_free(p);

    /* nothing of lower priority: upstream's message */
    p = pod(CPOD("peer", "", "'cpu':'2'", ",'priority':10"));
    sc_schedule(&a, &c, p, &r);
    sc_preempt(&c, p, &r, &pr);
    assert_null(pr.node);
    assert_string_equal(pr.message, "preemption: 0/2 nodes are available: "
                                    "2 No preemption victims found for incoming pod.");
    sc_preemption_release(&pr);
    sc_result_release(&r);
    sc_pod_free(p);

    p = pod(CPOD("never", "", "'cpu':'2'", ",'priority':1000,'preemptionPolicy':'Never'"));
    sc_schedule(&a, &c, p, &r);
    sc_preempt(&c, p, &r, &pr);
    assert_null(pr.node);
    assert_string_equal(pr.message, "preemption: not eligible due to preemptionPolicy=Never.");
    sc_preemption_release(&pr);
    sc_result_release(&r);
    sc_pod_free(p);
    sc_cache_destroy(&c);
}

/* Preemption with the cycle's pre-computed state: removing victims can satisfy inter-pod
 * anti-affinity (both directions) and topology spread; the simulation leaves no trace. */
static const struct preempt_case {
    const char *name, *nodes, *pods, *incoming;
    const char *want_node;       /* NULL: no candidate */
    int want_victims;
    const char *want_victim;     /* name of the most important victim, or NULL */
} preempt_cases[] = {
    {"own anti-affinity satisfied by evicting the matching pod",
     "[" NODE("n1", "", "") "]",
     "[" CPOD("x", "'app':'x'", "'cpu':'100m'", ON("n1") ",'priority':10") "," CPOD("y", "'app':'y'", "'cpu':'100m'", ON("n1") ",'priority':10") "]",
     CPOD("vip", "", "'cpu':'100m'", ",'priority':1000,'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
          "[{'labelSelector':{'matchLabels':{'app':'x'}},'topologyKey':'kubernetes.io/hostname'}]}}"),
     "n1", 1, "x"},
    {"an existing pod's anti-affinity toward the pod, evicted",
     "[" NODE("n1", "", "") "]",
     "[" CPOD("hater", "", "'cpu':'100m'", ON("n1") ",'priority':10,'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
          "[{'labelSelector':{'matchLabels':{'app':'vip'}},'topologyKey':'kubernetes.io/hostname'}]}}") "]",
     CPOD("vip", "'app':'vip'", "'cpu':'100m'", ",'priority':1000"),
     "n1", 1, "hater"},
    {"anti-affinity to a more important pod: no victims",
     "[" NODE("n1", "", "") "]",
     "[" CPOD("x", "'app':'x'", "'cpu':'100m'", ON("n1") ",'priority':5000") "]",
     CPOD("vip", "", "'cpu':'100m'", ",'priority':1000,'affinity':{'podAntiAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':"
          "[{'labelSelector':{'matchLabels':{'app':'x'}},'topologyKey':'kubernetes.io/hostname'}]}}"),
     NULL, 0, NULL},
    {"spread skew fixed by evicting lower-priority members of the group",
     "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
     "[" CPOD("s1", "'app':'s'", "'cpu':'100m'", ON("n1") ",'priority':10") "," CPOD("s2", "'app':'s'", "'cpu':'100m'", ON("n1") ",'priority':10")
     "," CPOD("big", "", "'cpu':'4'", ON("n2") ",'priority':5000") "]",
     CPOD("s3", "'app':'s'", "'cpu':'1'", ",'priority':1000,'topologySpreadConstraints':[{'maxSkew':1,'topologyKey':'kubernetes.io/hostname',"
          "'whenUnsatisfiable':'DoNotSchedule','labelSelector':{'matchLabels':{'app':'s'}}}]"),
     "n1", 2, "s1"},
    {"resources alone: the least important pods go, the others are reprieved",
     "[" NODE("n1", "", "") "]",
     "[" CPOD("a", "", "'cpu':'2'", ON("n1") ",'priority':10") "," CPOD("b", "", "'cpu':'2'", ON("n1") ",'priority':20") "]",
     CPOD("vip", "", "'cpu':'2'", ",'priority':1000"),
     "n1", 1, "a"},
};

static void test_preemption_cycle_state(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(preempt_cases); i++) {
        const struct preempt_case *tc = &preempt_cases[i];
        sc_cache c;
        build(&c, tc->nodes, tc->pods);
        int64_t used = sc_cache_node(&c, "n1")->used.cpu;
        int npods = sc_cache_node(&c, "n1")->npods;
        sc_algo a = {0};
        sc_pod *p = pod(tc->incoming);
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        if (r.node)
            fail_msg("%s: fits without preemption on %s", tc->name, r.node->name);
        sc_preemption pr;
        sc_preempt(&c, p, &r, &pr);
        if (!tc->want_node) {
            if (pr.node)
                fail_msg("%s: unexpected candidate %s", tc->name, pr.node->name);
        } else {
            if (!pr.node || strcmp(pr.node->name, tc->want_node))
                fail_msg("%s: node %s, want %s", tc->name, pr.node ? pr.node->name : "(none)",
                         tc->want_node);
            if (pr.nvictims != tc->want_victims)
                fail_msg("%s: %d victims, want %d", tc->name, pr.nvictims, tc->want_victims);
            if (tc->want_victim && strcmp(pr.victims[0]->name, tc->want_victim))
                fail_msg("%s: victim %s, want %s", tc->name, pr.victims[0]->name, tc->want_victim);
        }
        /* the simulation is undone: node, and a fresh cycle over it, as before */
        assert_int_equal(sc_cache_node(&c, "n1")->used.cpu, used);
        assert_int_equal(sc_cache_node(&c, "n1")->npods, npods);
        sc_result r2;
        sc_schedule(&a, &c, p, &r2);
        assert_null(r2.node);
        assert_int_equal(r2.nresolvable, r.nresolvable);
        sc_result_release(&r2);
        sc_preemption_release(&pr);
        sc_result_release(&r);
        sc_pod_free(p);
        sc_cache_destroy(&c);
    }
}

/* PodDisruptionBudgets: candidates with fewer violations win, and on a node the protected pods
 * are the first to be reprieved.  n1's pod (priority 10) is the natural victim, n2's (20) next. */
#define PDB(name, sel, allowed, disrupted) \
    "{'metadata':{'name':'" name "','namespace':'default'},'spec':{'selector':" sel "}," \
    "'status':{'disruptionsAllowed':" allowed ",'disruptedPods':{" disrupted "}}}"
static const struct pdb_case {
    const char *name, *pdbs;
    const char *want_node;
    int want_violations;
} pdb_cases[] = {
    {"no PDB: the least important victim", "[]", "n1", 0},
    {"n1's pod protected: n2", "[" PDB("p", "{'matchLabels':{'app':'a'}}", "0", "") "]", "n2", 0},
    {"a budget left: no violation", "[" PDB("p", "{'matchLabels':{'app':'a'}}", "1", "") "]", "n1", 0},
    {"both protected: priority decides, one violation",
     "[" PDB("p", "{'matchLabels':{'app':'a'}}", "0", "") "," PDB("q", "{'matchLabels':{'app':'b'}}", "0", "") "]", "n1", 1},
    {"an empty selector protects nothing", "[" PDB("p", "{}", "0", "") "]", "n1", 0},
    {"a pod already being disrupted is not counted again",
     "[" PDB("p", "{'matchLabels':{'app':'a'}}", "0", "'a1':'2026-01-01T00:00:00Z'") "]", "n1", 0},
    {"another namespace's budget does not apply",
     "[{'metadata':{'name':'p','namespace':'other'},'spec':{'selector':{'matchLabels':{'app':'a'}}},'status':{'disruptionsAllowed':0}}]",
     "n1", 0},
};

static void test_preemption_pdb(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(pdb_cases); i++) {
        const struct pdb_case *tc = &pdb_cases[i];
        sc_cache c;
        build(&c, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]",
              "[" CPOD("a1", "'app':'a'", "'cpu':'3'", ON("n1") ",'priority':10") ","
                  CPOD("b1", "'app':'b'", "'cpu':'3'", ON("n2") ",'priority':20") "]");
        json_t *pdbs = js(tc->pdbs);
        size_t k;
        json_t *b;
        json_array_foreach(pdbs, k, b)
            assert_int_equal(sc_cache_pdb_set(&c, b, NULL), 0);
        json_decref(pdbs);
        sc_algo a = {0};
        sc_pod *p = pod(CPOD("vip", "", "'cpu':'2'", ",'priority':1000"));
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        sc_preemption pr;
        sc_preempt(&c, p, &r, &pr);
        if (!pr.node || strcmp(pr.node->name, tc->want_node))
            fail_msg("%s: node %s, want %s", tc->name, pr.node ? pr.node->name : "(none)", tc->want_node);
        if (pr.pdb_violations != tc->want_violations)
            fail_msg("%s: %d violations, want %d", tc->name, pr.pdb_violations, tc->want_violations);
        sc_preemption_release(&pr);
        sc_result_release(&r);
        sc_pod_free(p);
        sc_cache_destroy(&c);
    }

    /* on one node: of two equal pods, the one a PDB protects is reprieved */
    static const struct { const char *protect, *want_victim; } within[] = {
        {"x", "y"}, {"y", "x"}, {NULL, "y"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(within); i++) {
        sc_cache c;
        build(&c, "[" NODE("n1", "", "") "]",
              "[" CPOD("x", "'app':'x'", "'cpu':'2'", ON("n1") ",'priority':10") ","
                  CPOD("y", "'app':'y'", "'cpu':'2'", ON("n1") ",'priority':10") "]");
        if (within[i].protect) {
            char text[256];
            snprintf(text, sizeof text, PDB("p", "{'matchLabels':{'app':'%s'}}", "0", ""), within[i].protect);
            json_t *b = js(text);
            assert_int_equal(sc_cache_pdb_set(&c, b, NULL), 0);
            json_decref(b);
        }
        sc_algo a = {0};
        sc_pod *p = pod(CPOD("vip", "", "'cpu':'2'", ",'priority':1000"));
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        sc_preemption pr;
        sc_preempt(&c, p, &r, &pr);
        assert_non_null(pr.node);
        assert_int_equal(pr.nvictims, 1);
        assert_string_equal(pr.victims[0]->name, within[i].want_victim);
        assert_int_equal(pr.pdb_violations, 0);
        sc_preemption_release(&pr);
        sc_result_release(&r);
        sc_pod_free(p);
        sc_cache_destroy(&c);
    }
    /* replacing and deleting budgets */
    sc_cache c;
    build(&c, "[]", "[]");
    json_t *b = js(PDB("p", "{'matchLabels':{'app':'a'}}", "0", ""));
    assert_int_equal(sc_cache_pdb_set(&c, b, NULL), 0);
    assert_int_equal(sc_cache_pdb_set(&c, b, NULL), 0);
    assert_int_equal(c.npdbs, 1);
    sc_cache_pdb_del(&c, "default", "p");
    assert_int_equal(c.npdbs, 0);
    json_decref(b);
    sc_cache_destroy(&c);
}

/* A nominated pod holds the room on its node against pods of lower (not higher) priority. */
static const struct nominate_case {
    const char *name, *incoming;
    bool nominate;
    const char *want;            /* node, or NULL: unschedulable */
} nominate_cases[] = {
    {"lower priority cannot take the reserved room", CPOD("low", "", "'cpu':'2'", ",'priority':0"), true, NULL},
    {"equal priority cannot either", CPOD("eq", "", "'cpu':'2'", ",'priority':500"), true, NULL},
    {"higher priority ignores the reservation", CPOD("hi", "", "'cpu':'2'", ",'priority':2000"), true, "n1"},
    {"small enough to fit beside it", CPOD("tiny", "", "'cpu':'500m'", ",'priority':0"), true, "n1"},
    {"the preemptor itself gets its node", CPOD("pre", "", "'cpu':'3'", ",'priority':500"), true, "n1"},
    {"without the nomination the room is free", CPOD("low", "", "'cpu':'2'", ",'priority':0"), false, "n1"},
};

static void test_nominated_reservation(void **state)
{
    for (size_t i = 0; i < ARRAY_SIZE(nominate_cases); i++) {
        const struct nominate_case *tc = &nominate_cases[i];
        sc_cache c;
        build(&c, "[" NODE("n1", "", "") "]", "[" CPOD("run", "", "'cpu':'500m'", ON("n1")) "]");
        sc_pod *pre = pod(CPOD("pre", "", "'cpu':'3'", ",'priority':500"));
        if (tc->nominate) {
            sc_cache_nominate(&c, pre, "n1");
            assert_string_equal(sc_cache_nominated_node(&c, "default/pre"), "n1");
        }
        sc_algo a = {0};
        sc_pod *p = pod(tc->incoming);
        sc_result r;
        sc_schedule(&a, &c, p, &r);
        if (!tc->want ? r.node != NULL : (!r.node || strcmp(r.node->name, tc->want)))
            fail_msg("%s: got %s", tc->name, r.node ? r.node->name : "(none)");
        if (!tc->want) {
            cleanup_free char *m = sc_fit_message(&r);
            assert_string_equal(m, "0/1 nodes are available: 1 Insufficient cpu.");
        }
        assert_int_equal(sc_cache_node(&c, "n1")->npods, 1);        /* nothing left behind */
        assert_int_equal(sc_cache_node(&c, "n1")->used.cpu, 500);
        sc_result_release(&r);
        sc_pod_free(p);
        sc_pod_free(pre);
        sc_cache_destroy(&c);
    }

    /* a preemptor of higher priority takes over the node: lower nominations there are dropped */
    sc_cache c;
    build(&c, "[" NODE("n1", "", "") "," NODE("n2", "", "") "]", "[]");
    sc_pod *lo = pod(CPOD("lo", "", "'cpu':'1'", ",'priority':10"));
    sc_pod *mid = pod(CPOD("mid", "", "'cpu':'1'", ",'priority':50"));
    sc_pod *other = pod(CPOD("other", "", "'cpu':'1'", ",'priority':1"));
    sc_cache_nominate(&c, lo, "n1");
    sc_cache_nominate(&c, mid, "n1");
    sc_cache_nominate(&c, other, "n2");
    assert_int_equal(sc_cache_unnominate_lower(&c, "n1", 20), 1);
    assert_null(sc_cache_nominated_node(&c, "default/lo"));
    assert_string_equal(sc_cache_nominated_node(&c, "default/mid"), "n1");
    assert_string_equal(sc_cache_nominated_node(&c, "default/other"), "n2");
    sc_cache_nominate(&c, mid, "n2");                 /* re-nominated elsewhere */
    assert_string_equal(sc_cache_nominated_node(&c, "default/mid"), "n2");
    sc_cache_unnominate(&c, "default/mid");
    assert_null(sc_cache_nominated_node(&c, "default/mid"));
    sc_pod_free(lo);
    sc_pod_free(mid);
    sc_pod_free(other);
    sc_cache_destroy(&c);
}

static sc_pod *qpod(const char *name, int prio)
{
    char text[256];
    snprintf(text, sizeof text, "{'metadata':{'name':'%s','namespace':'q'},'spec':{'priority':%d}}", name, prio);
    return pod(text);
}

/* Updates of placed pods that change nothing the scheduler reads are not compiled again: our own
 * binding coming back confirms the assumed pod in place (same node, labels and uid only), and a
 * status report of a confirmed pod is a no-op; anything else goes the compile path. */
static void test_placed_unchanged(void **state)
{
    sc_sched s = {0};
    pthread_mutex_init(&s.lock, NULL);
    s.queue = sc_queue_new(50, 200);
    sc_cache_init(&s.cache);
    json_t *n1 = js(NODE("n1", "", ""));
    assert_int_equal(sc_cache_node_set(&s.cache, n1, NULL), 0);
    json_decref(n1);
    sc_pod *p = pod("{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},"
                    "'spec':{'containers':[{'name':'c','resources':{'requests':{'cpu':'1'}}}]}}");
    sc_cache_assume(&s.cache, p, "n1");
    static const struct {
        const char *obj;
        bool unchanged, assumed_after;
    } cases[] = {
        /* not placed, another node, other labels, another uid, being deleted, terminal */
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{}}", false, true},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{'nodeName':'n2'}}", false, true},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'y'}},'spec':{'nodeName':'n1'}}", false, true},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u2','labels':{'app':'x'}},'spec':{'nodeName':'n1'}}", false, true},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'},'deletionTimestamp':'2026-01-01T00:00:00Z'},'spec':{'nodeName':'n1'}}", false, true},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{'nodeName':'n1'},'status':{'phase':'Succeeded'}}", false, true},
        {"{'metadata':{'name':'b','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{'nodeName':'n1'}}", false, true},
        /* our binding: confirmed in place; then the kubelet's report: nothing to do */
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{'nodeName':'n1'},'status':{'phase':'Pending'}}", true, false},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},'spec':{'nodeName':'n1'},'status':{'phase':'Running'}}", true, false},
        {"{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'z'}},'spec':{'nodeName':'n1'},'status':{'phase':'Running'}}", false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = js(cases[i].obj);
        assert_int_equal(sc_sched_placed_unchanged(&s, o), cases[i].unchanged);
        json_decref(o);
        sc_pod *cp = sc_cache_pod(&s.cache, "d/a");
        assert_non_null(cp);
        assert_int_equal(cp->assumed, cases[i].assumed_after);
        assert_ptr_equal(cp, p);                        /* never replaced here */
    }
    assert_int_equal(s.confirmed, 1);
    assert_int_equal(sc_cache_node(&s.cache, "n1")->used.cpu, 1000);
    sc_cache_destroy(&s.cache);
    sc_queue_free(s.queue);
    pthread_mutex_destroy(&s.lock);
}

static void test_queue(void **state)
{
    sc_queue *q = sc_queue_new(50, 200);
    sc_queue_add(q, qpod("low", 1));
    sc_queue_add(q, qpod("high", 100));
    sc_queue_add(q, qpod("low2", 1));
    sc_qitem *it = sc_queue_pop(q);
    assert_string_equal(it->pod->name, "high");             /* priority first */
    sc_pod_free(sc_queue_done(q, it));
    it = sc_queue_pop(q);
    assert_string_equal(it->pod->name, "low");              /* then first come */
    /* fails: goes unschedulable and stays there without an event */
    sc_queue_requeue_failed(q, it, SC_F_RESOURCES);
    int a, b, u;
    sc_queue_stats(q, &a, &b, &u);
    assert_int_equal(u, 1);
    sc_queue_move(q, SC_EV_POD_ADD);                         /* cannot help a resource failure */
    sc_queue_stats(q, &a, &b, &u);
    assert_int_equal(u, 1);
    sc_queue_move(q, SC_EV_POD_DELETE);                      /* can: to backoff (1st attempt 50ms) */
    sc_queue_stats(q, &a, &b, &u);
    assert_int_equal(u, 0);
    it = sc_queue_pop(q);
    assert_string_equal(it->pod->name, "low2");
    sc_pod_free(sc_queue_done(q, it));
    int64_t t0 = ck_now_ns();
    it = sc_queue_pop(q);                                    /* waits out the backoff */
    assert_string_equal(it->pod->name, "low");
    assert_true(ck_now_ns() - t0 >= 20 * 1000000LL);
    /* an event during its cycle sends it to backoff, not unschedulable */
    sc_queue_move(q, SC_EV_NODE_ADD);
    sc_queue_requeue_failed(q, it, SC_F_RESOURCES);
    sc_queue_stats(q, &a, &b, &u);
    assert_int_equal(b, 1);
    /* deleted while queued */
    sc_queue_delete(q, "q/low");
    sc_queue_stats(q, &a, &b, &u);
    assert_int_equal(a + b + u, 0);
    assert_false(sc_queue_contains(q, "q/low"));
    sc_queue_shutdown(q);
    assert_null(sc_queue_pop(q));
    sc_queue_free(q);
}

static void test_map(void **state)
{
    sc_map *m = sc_map_new();
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        sc_map_put(m, k, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal((intptr_t)sc_map_del(m, k), i + 1);
    }
    assert_int_equal(sc_map_len(m), 2500);
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal((intptr_t)sc_map_get(m, k), i % 2 ? i + 1 : 0);
    }
    sc_map_add(m, "k1", 5);
    assert_int_equal(sc_map_count(m, "k1"), 7);
    size_t n = 0, it = 0;
    const char *key;
    void *v;
    while (sc_map_next(m, &it, &key, &v))
        n++;
    assert_int_equal(n, 2500);
    sc_map_free(m);
}

/* A queued pod is compact (text + the borrowed subtrees): filters decide as before, the whole
 * object comes back from the text, equal label sets are one shared tree, and a node keeps no
 * object but still tells scheduling changes from heartbeats. */
/* The binding printed from a template is the object json_pack would build, escapes included. */
static void test_binding_text(void **state)
{
    (void)state;
    static const char *rows[][4] = {
        {"default", "web-0", "0b7c-11", "node-1"},
        {"ns", "a.b-c", "", "n"},
        {"q\"uote", "back\\slash", "tab\there", "\xc3\xa9t\xc3\xa9"},
        {"ctl\x01", "nl\nx", "/slash/", "{\"x\":1}"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        size_t len = 0;
        char *text = sc_binding_text(rows[i][0], rows[i][1], rows[i][2], rows[i][3], &len);
        assert_int_equal(len, strlen(text));
        json_error_t jerr;
        json_t *got = json_loadb(text, len, 0, &jerr);
        assert_non_null(got);
        json_t *want = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}", "apiVersion",
                                 "v1", "kind", "Binding", "metadata", "name", rows[i][1],
                                 "namespace", rows[i][0], "uid", rows[i][2], "target",
                                 "apiVersion", "v1", "kind", "Node", "name", rows[i][3]);
        assert_true(json_equal(got, want));
        json_decref(got);
        json_decref(want);
        free(text);
    }
}

static void test_compact_forms(void **state)
{
    const char *spec = "{'metadata':{'name':'a','namespace':'d','uid':'u1','labels':{'app':'x'}},"
                       "'spec':{'nodeSelector':{'zone':'z1'},'affinity':{'nodeAffinity':{"
                       "'requiredDuringSchedulingIgnoredDuringExecution':{'nodeSelectorTerms':"
                       "[{'matchExpressions':[{'key':'disk','operator':'In','values':['ssd']}]}]}}},"
                       "'containers':[{'name':'c','resources':{'requests':{'cpu':'100m'}}}]},"
                       "'status':{'phase':'Pending','nominatedNodeName':'n1'}}";
    sc_pod *p = pod(spec), *q = pod(spec);
    json_t *whole = js(spec);
    sc_pod_compact(p);
    sc_pod_compact(q);
    assert_non_null(p->text);
    json_t *back = sc_pod_object(p);
    assert_true(json_equal(back, whole));
    json_decref(back);
    assert_ptr_equal(p->labels, q->labels);          /* one tree for equal labels */
    assert_string_equal(json_string_value(json_object_get(json_object_get(p->obj, "status"),
                                                          "nominatedNodeName")), "n1");
    assert_int_equal(p->req.cpu, 100);
    static const struct { const char *node; bool match; } rows[] = {
        {"{'metadata':{'name':'n1','labels':{'zone':'z1','disk':'ssd'}},'status':{}}", true},
        {"{'metadata':{'name':'n2','labels':{'zone':'z1','disk':'hdd'}},'status':{}}", false},
        {"{'metadata':{'name':'n3','labels':{'zone':'z2','disk':'ssd'}},'status':{}}", false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
        sc_node n = {0};
        json_t *o = js(rows[i].node);
        assert_int_equal(sc_node_set(&n, o, NULL), 0);
        json_decref(o);
        assert_int_equal(sc_node_matches_pod_selector(p, &n), rows[i].match);
        sc_node_free_fields(&n);
    }
    sc_pod_slim(q);                                   /* placed: labels stay, text goes */
    assert_null(q->text);
    assert_string_equal(json_string_value(json_object_get(q->labels, "app")), "x");
    sc_pod_free(p);
    sc_pod_free(q);
    json_decref(whole);

    static const struct { const char *after; bool differs; } nrows[] = {
        {"{'metadata':{'name':'n','labels':{'a':'1'}},'status':{'allocatable':{'cpu':'4'},"
         "'conditions':[{'type':'Ready','status':'True','lastHeartbeatTime':'later'}]}}", false},
        {"{'metadata':{'name':'n','labels':{'a':'2'}},'status':{'allocatable':{'cpu':'4'},"
         "'conditions':[{'type':'Ready','status':'True'}]}}", true},
        {"{'metadata':{'name':'n','labels':{'a':'1'}},'status':{'allocatable':{'cpu':'8'},"
         "'conditions':[{'type':'Ready','status':'True'}]}}", true},
        {"{'metadata':{'name':'n','labels':{'a':'1'}},'status':{'allocatable':{'cpu':'4'},"
         "'conditions':[{'type':'Ready','status':'False'}]}}", true},
        {"{'metadata':{'name':'n','labels':{'a':'1'}},'spec':{'taints':[{'key':'k','effect':"
         "'NoSchedule'}]},'status':{'allocatable':{'cpu':'4'},'conditions':[{'type':'Ready',"
         "'status':'True'}]}}", true},
        {"{'metadata':{'name':'n','labels':{'a':'1'}},'spec':{'unschedulable':true},'status':{"
         "'allocatable':{'cpu':'4'},'conditions':[{'type':'Ready','status':'True'}]}}", true},
    };
    sc_node base = {0};
    json_t *b = js("{'metadata':{'name':'n','labels':{'a':'1'}},'status':{'allocatable':{'cpu':'4'},"
                   "'conditions':[{'type':'Ready','status':'True'}]}}");
    sc_node_set(&base, b, NULL);
    json_decref(b);
    for (size_t i = 0; i < ARRAY_SIZE(nrows); i++) {
        json_t *o = js(nrows[i].after);
        if (sc_node_sched_differs(&base, o) != nrows[i].differs)
            fail_msg("node row %zu", i);
        json_decref(o);
    }
    sc_node_free_fields(&base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters),          cmocka_unit_test(test_scores),
        cmocka_unit_test(test_schedule_prefers), cmocka_unit_test(test_ties_are_fair),
        cmocka_unit_test(test_assume_and_message), cmocka_unit_test(test_requests),
        cmocka_unit_test(test_num_to_find),      cmocka_unit_test(test_sampling_rotates),
        cmocka_unit_test(test_preemption),       cmocka_unit_test(test_queue),
        cmocka_unit_test(test_map), cmocka_unit_test(test_binding_text),              cmocka_unit_test(test_preemption_cycle_state),
        cmocka_unit_test(test_preemption_pdb),   cmocka_unit_test(test_nominated_reservation),
        cmocka_unit_test(test_compact_forms),    cmocka_unit_test(test_placed_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
