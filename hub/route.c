#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handover/timeutil.h"

static const char *
str(const char *s)
{
    return s ? s : "";
}

static bool
in_list(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* The referral's service, or NULL when the body is not a referral (the
 * bodies share a union, so the pointer alone says nothing). */
static const char *
referral_service(const Handover__Event *ev)
{
    return ev->body_case == HANDOVER__EVENT__BODY_REFERRAL
               ? str(ev->referral->service)
               : NULL;
}

static bool
rule_matches(const config_route *r, const Handover__Event *ev)
{
    if (r->event_type[0] && strcmp(r->event_type, str(ev->event_type)) != 0)
        return false;
    if (r->services) {
        if (ev->body_case != HANDOVER__EVENT__BODY_REFERRAL ||
            !in_list(r->services, r->n_services, str(ev->referral->service)))
            return false;
    }
    if (r->pathways) {
        if (ev->body_case != HANDOVER__EVENT__BODY_DISCHARGE ||
            ev->discharge->pathway_present_case !=
                HANDOVER__DISCHARGE__PATHWAY_PRESENT_PATHWAY ||
            ev->discharge->pathway < 0 || ev->discharge->pathway > 3 ||
            !(r->pathways & (1u << ev->discharge->pathway)))
            return false;
    }
    if (r->follow_up) {
        bool any = false;
        if (ev->body_case == HANDOVER__EVENT__BODY_DISCHARGE)
            for (size_t i = 0; i < ev->discharge->n_follow_up && !any; i++)
                any = in_list(r->follow_up, r->n_follow_up,
                              str(ev->discharge->follow_up[i]->service));
        if (!any)
            return false;
    }
    return true;
}

const char *
route_view_of(const config_org *org)
{
    if (org->view[0])
        return org->view;
    switch (org->agency) {
    case AGENCY_SOCIAL:
        return "council";
    case AGENCY_VOLUNTARY:
        return "voluntary";
    default:
        return "full";
    }
}

/* Add code once; dead entries carry their reason. */
static hov_err
add_dest(const config *c, route_result *out, const char *code, bool dead,
         const char *reason, hov_error *err)
{
    for (size_t i = 0; i < out->n; i++)
        if (strcmp(out->dest[i].code, code) == 0)
            return HOV_OK;
    if (out->n == ROUTE_MAX_DESTS)
        return hov_fail(err, HOV_EINVAL, 0,
                        "event would go to more than %d destinations",
                        ROUTE_MAX_DESTS);
    route_dest *d = &out->dest[out->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->code, sizeof d->code, "%s", code);
    d->dead = dead;
    if (dead) {
        snprintf(d->reason, sizeof d->reason, "%s", reason);
        d->agency = AGENCY_GP;
        snprintf(d->view, sizeof d->view, "full");
        return HOV_OK;
    }
    const config_org *o = config_org_find(c, code);
    d->agency = o->agency;
    snprintf(d->view, sizeof d->view, "%s", route_view_of(o));
    return HOV_OK;
}

static hov_err
add_registered_gp(const config *c, const Handover__Event *ev, route_result *out,
                  hov_error *err)
{
    const char *gp = ev->patient ? str(ev->patient->registered_gp) : "";
    char reason[160];
    if (gp[0] == '\0') {
        snprintf(reason, sizeof reason,
                 "no route: patient has no registered GP practice");
        snprintf(out->warning, sizeof out->warning,
                 "GP copy not sent: the patient has no registered GP "
                 "practice");
        return add_dest(c, out, "registered_gp", true, reason, err);
    }
    const config_org *o = config_org_find(c, gp);
    if (o == NULL) {
        snprintf(reason, sizeof reason,
                 "no route: registered GP practice %s is not configured", gp);
        snprintf(out->warning, sizeof out->warning,
                 "GP copy not sent: practice %s is not configured in "
                 "Handover",
                 gp);
        return add_dest(c, out, gp, true, reason, err);
    }
    return add_dest(c, out, gp, false, NULL, err);
}

static bool
consent_explicit(const Handover__Event *ev)
{
    const Handover__Consent *k = ev->consent;
    if (k == NULL || str(k->recorded_at)[0] == '\0')
        return false;
    return strcmp(str(k->basis), "explicit") == 0 ||
           strcmp(str(k->basis), "best_interests") == 0;
}

hov_err
route_match(const config *c, const Handover__Event *ev,
            const route_reply *reply, route_result *out, hov_error *err)
{
    out->n = 0; /* the table is 4 KiB: clear only what says it is empty */
    out->warning[0] = '\0';
    const char *type = str(ev->event_type);
    bool is_outcome = strcmp(type, "outcome") == 0;
    hov_err e;

    for (size_t i = 0; i < ev->n_destinations; i++) {
        const char *code = str(ev->destinations[i]->code);
        if (config_org_find(c, code) == NULL)
            return hov_fail(err, HOV_EUNKNOWNDEST, 0,
                            "destination %s is not a configured "
                            "organisation",
                            code);
        if ((e = add_dest(c, out, code, false, NULL, err)) != HOV_OK)
            return e;
    }
    bool matched = false, discharge_outcome = false;
    for (size_t r = 0; r < c->n_routes; r++) {
        const config_route *rt = &c->routes[r];
        if (!rule_matches(rt, ev))
            continue;
        matched = true;
        for (size_t j = 0; j < rt->n_to; j++) {
            const char *to = rt->to[j];
            if (strcmp(to, ROUTE_TO_REQUESTED) == 0) {
                bool any = false;
                for (size_t i = 0; i < out->n; i++)
                    any |= out->dest[i].agency == AGENCY_VOLUNTARY;
                if (!any)
                    return hov_fail(err, HOV_EMISSING, 0,
                                    "destinations: a %s referral must name the "
                                    "voluntary organisation to receive it",
                                    referral_service(ev) ? referral_service(ev)
                                                         : type);
            } else if (strcmp(to, ROUTE_TO_REGISTERED_GP) == 0) {
                if ((e = add_registered_gp(c, ev, out, err)) != HOV_OK)
                    return e;
            } else if (strcmp(to, ROUTE_TO_REPLY) == 0) {
                if (!is_outcome || reply == NULL)
                    continue;
                /* Discharge outcomes are recorded, not sent back, until a
                 * format is agreed with the trust (domain brief §2.1). */
                if (strcmp(str(reply->event_type), "discharge") == 0 &&
                    !c->deliver_discharge_outcomes) {
                    discharge_outcome = true;
                    continue;
                }
                if (config_org_find(c, str(reply->source_org)) == NULL)
                    return hov_fail(err, HOV_ENOROUTE, 0,
                                    "no route: the answered event's source "
                                    "%s is no longer configured",
                                    str(reply->source_org));
                if ((e = add_dest(c, out, reply->source_org, false, NULL,
                                  err)) != HOV_OK)
                    return e;
            } else if ((e = add_dest(c, out, to, false, NULL, err)) != HOV_OK) {
                return e;
            }
        }
    }
    if (out->n == 0 && !discharge_outcome) {
        if (!matched)
            return hov_fail(err, HOV_ENOROUTE, 0,
                            "no route: no rule matches this %s%s%s", type,
                            referral_service(ev) ? " for service " : "",
                            referral_service(ev) ? referral_service(ev) : "");
        return hov_fail(err, HOV_ENOROUTE, 0,
                        "no route: the matching rules give no destination "
                        "for this %s",
                        type);
    }
    if (strcmp(type, "referral") == 0 && !consent_explicit(ev)) {
        for (size_t i = 0; i < out->n; i++)
            if (!out->dest[i].dead && out->dest[i].agency == AGENCY_VOLUNTARY)
                return hov_fail(err, HOV_ECONSENT, 0,
                                "consent required: no explicit consent "
                                "recorded for referral to %s",
                                out->dest[i].code);
    }
    return HOV_OK;
}

/* ----------------------------------------------------------------- views */

/* Fields a view leaves out. Pointers are swapped out for the pack and put
 * back before the unpacked message is freed, so protobuf-c frees what it
 * allocated and nothing else. */
typedef struct view_spec {
    const char *name;
    bool no_nhs_dob;   /* nhs_number, date_of_birth (age_years instead) */
    bool no_reason;    /* reason, social_details */
    bool no_clinical;  /* clinical_details, diagnoses */
    bool no_meds;      /* medications_summary */
    bool no_equipment; /* items, prescriber */
} view_spec;

static const view_spec views[] = {
    {"full", false, false, false, false, false},
    {"council", false, false, true, false, false},
    {"ces", false, true, true, true, false},
    {"voluntary", true, false, true, true, true},
};

hov_err
route_view_pack(const char *view, const uint8_t *stored, size_t len,
                const char *today, const uint8_t **out, size_t *outlen,
                bool *owned, hov_error *err)
{
    const view_spec *v = NULL;
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        if (strcmp(views[i].name, view) == 0)
            v = &views[i];
    if (v == NULL)
        return hov_fail(err, HOV_ECONFIG, 0, "unknown view '%s'", view);
    if (v == &views[0]) {
        *out = stored;
        *outlen = len;
        *owned = false;
        return HOV_OK;
    }
    Handover__Event *ev = handover__event__unpack(NULL, len, stored);
    if (ev == NULL)
        return hov_fail(err, HOV_EMALFORMED, 0,
                        "stored event is not a valid Event");
    char *empty = (char *)"";
    Handover__Patient *p = ev->patient;
    /* The bodies share a union (oneof): only the one body_case names is
     * there. */
    Handover__Discharge *d =
        ev->body_case == HANDOVER__EVENT__BODY_DISCHARGE ? ev->discharge : NULL;
    Handover__EquipmentOrder *eq =
        ev->body_case == HANDOVER__EVENT__BODY_EQUIPMENT_ORDER
            ? ev->equipment_order
            : NULL;
    /* Saved originals. */
    char *nhs = p ? p->nhs_number : NULL, *dob = p ? p->date_of_birth : NULL;
    Handover__Patient__AgeCase age_case = p ? p->age_case : 0;
    char *reason = ev->reason, *social = ev->social_details;
    char *clinical = ev->clinical_details;
    size_t n_diag = d ? d->n_diagnoses : 0;
    char *meds = d ? d->medications_summary : NULL;
    size_t n_items = eq ? eq->n_items : 0;
    Handover__Person *prescriber = eq ? eq->prescriber : NULL;

    if (v->no_nhs_dob && p) {
        int age = hov_age_years(dob, today);
        p->nhs_number = empty;
        p->date_of_birth = empty;
        if (age >= 0) {
            p->age_case = HANDOVER__PATIENT__AGE_AGE_YEARS;
            p->age_years = age;
        }
    }
    if (v->no_reason) {
        ev->reason = empty;
        ev->social_details = empty;
    }
    if (v->no_clinical) {
        ev->clinical_details = empty;
        if (d)
            d->n_diagnoses = 0;
    }
    if (v->no_meds && d)
        d->medications_summary = empty;
    if (v->no_equipment && eq) {
        eq->n_items = 0;
        eq->prescriber = NULL;
    }
    size_t n = handover__event__get_packed_size(ev);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf != NULL)
        handover__event__pack(ev, buf);

    if (p) {
        p->nhs_number = nhs;
        p->date_of_birth = dob;
        p->age_case = age_case;
    }
    ev->reason = reason;
    ev->social_details = social;
    ev->clinical_details = clinical;
    if (d) {
        d->n_diagnoses = n_diag;
        d->medications_summary = meds;
    }
    if (eq) {
        eq->n_items = n_items;
        eq->prescriber = prescriber;
    }
    handover__event__free_unpacked(ev, NULL);
    if (buf == NULL)
        return hov_fail(err, HOV_ENOMEM, 0, "pack view %s", view);
    *out = buf;
    *outlen = n;
    *owned = true;
    return HOV_OK;
}
