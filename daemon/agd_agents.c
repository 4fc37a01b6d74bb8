/*  =========================================================================
    agd_agents - the agent table: create, look up, delete, list

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/
//  @header
//  Agents by id and by name, and what the broker answers about them
//  itself: CREATE (checked and queued here, init runs on a worker),
//  LOOKUP, LIST, and the bookkeeping of DELETE. An agent leaves the
//  counts its limits are checked against when its DELETE arrives, and
//  the table when its fini has run.
//  @end

#include "agd_broker.h"

//  Agents

//  An agent leaves the counts its limits are checked against: when
//  deleted (before its fini has run), or when freed
static void
s_agent_uncount (agd_broker_t *self, agd_agent_t *agent)
{
    if (agent->deleting)
        return;                     //  done already
    self->agents_counted--;
    if (agent->creator) {
        agent->creator->agents--;
        agd_accounts_release (self->accounts, agent->creator);
        agent->creator = NULL;
    }
    agd_client_t *owner = agent->owner;
    if (owner) {
        if (agent->owner_prev)
            agent->owner_prev->owner_next = agent->owner_next;
        else
            owner->agents = agent->owner_next;
        if (agent->owner_next)
            agent->owner_next->owner_prev = agent->owner_prev;
        agent->owner_prev = agent->owner_next = NULL;
        owner->owned--;
        agent->owner = NULL;
        agd_clients_release (self->clients, owner);
    }
}

void
agd_agents_free (agd_broker_t *self, agd_agent_t *agent)
{
    agd_hosts_forget (self, agent);
    s_agent_uncount (self, agent);
    agd_index_remove (self->listed, agent->id);
    ag_idmap_delete (self->agents, agent->id);
    if (agent->name) {
        if (zhashx_lookup (self->names, agent->name) == agent)
            zhashx_delete (self->names, agent->name);
        free (agent->name);
    }
    free (agent);
}

//  From now on the agent takes no requests, and its name is free
void
agd_agents_deleting (agd_broker_t *self, agd_agent_t *agent)
{
    s_agent_uncount (self, agent);
    agd_index_remove (self->listed, agent->id);
    agent->deleting = true;
    agd_cancel_agent (self, agent);
    if (agent->name) {
        zhashx_delete (self->names, agent->name);
        free (agent->name);
        agent->name = NULL;
    }
}

//  Answer every job still in an agent's mailbox with an error
void
agd_agents_flush (agd_broker_t *self, agd_agent_t *agent, int status,
                  const char *reason)
{
    while (agent->head) {
        agd_job_t *job = agent->head;
        agent->head = job->next;
        agent->queued--;
        self->jobs_pending--;
        if (!job->answered)
            agd_broker_error (self, job, status, "%s", reason);
        agd_broker_unkeep (self, job, status, reason);
        agd_broker_job_free (self, job);
    }
    agent->tail = NULL;
    agd_pool_unready (self, agent);
}

//  ---------------------------------------------------------------------
void
agd_pack_str (msgpack_packer *pk, const char *s)
{
    size_t len = strlen (s);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, s, len);
}

//  A LIST body: nothing, or {after: id, limit: n}. Returns 0, or -1 with
//  a reason.
static int
s_list_decode (agd_broker_t *self, agd_job_t *job, uint64_t *after,
               size_t *limit, const char **reason)
{
    *after = 0;
    *limit = AGD_LIST_PAGE;
    size_t size = agp_msg_body_size (&job->body);
    if (size == 0)
        return 0;
    msgpack_object body;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body), size, &self->zone,
                           &body, reason))
        return -1;
    if (body.type == MSGPACK_OBJECT_NIL)
        return 0;
    const msgpack_object *from = ag_obj_get (&body, "after");
    const msgpack_object *count = ag_obj_get (&body, "limit");
    if (body.type != MSGPACK_OBJECT_MAP
    ||  (from && from->type != MSGPACK_OBJECT_POSITIVE_INTEGER
              && from->type != MSGPACK_OBJECT_NIL)
    ||  (count && (count->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                || count->via.u64 == 0))) {
        *reason = "the body must be empty or {after: uint, limit: uint"
                  " above 0}";
        return -1;
    }
    if (from && from->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *after = from->via.u64;
    if (count && count->via.u64 < AGD_LIST_PAGE)
        *limit = (size_t) count->via.u64;
    return 0;
}

void
agd_agents_list (agd_broker_t *self, agd_job_t *job)
{
    uint64_t after;
    size_t limit;
    const char *reason;
    if (s_list_decode (self, job, &after, &limit, &reason)) {
        agd_broker_error (self, job, AG_BAD_REQUEST, "LIST: %s", reason);
        agd_broker_job_free (self, job);
        return;
    }
    //  Pages are packed a few per pass of the broker's loop, so that a
    //  storm of them does not hold everyone else up; a page waiting is
    //  a pending request of its client
    if (agd_admit (self, job)) {
        agd_broker_job_free (self, job);
        return;
    }
    job->next = NULL;
    if (self->lists_tail)
        self->lists_tail->next = job;
    else
        self->lists_head = job;
    self->lists_tail = job;
}

//  One page: the listed agents after an id, in ascending order
static void
s_pack_page (agd_broker_t *self, uint64_t after, size_t limit)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    int64_t now = ag_usecs ();
    void *page [AGD_LIST_PAGE];
    size_t count = agd_index_after (self->listed, after, page, limit);
    msgpack_pack_array (pk, count);
    for (size_t i = 0; i < count; i++) {
        agd_agent_t *agent = (agd_agent_t *) page [i];
        static const char *lives [] = { "running", "restarting", "failed" };
        ag_pack (pk, "{s:u, s:s, s:s, s:u, s:u, s:u, s:b, s:s, s:u, s:u, s:s,"
                 " s:u}",
                 "id", agent->id, "name", agent->name,
                 "class", agent->cls->name,
                 "served", agent->served,
                 "queued", (uint64_t) agent->queued,
                 "age_ms", (uint64_t) (now - agent->created) / 1000,
                 "busy", (int) agent->busy,
                 "state", lives [agent->life],
                 "restarts", (uint64_t) agent->restarts,
                 "host", (uint64_t) agd_hosts_pid (agent),
                 "last_crash", agent->last_crash,
                 "last_crash_ms", agent->last_crash
                 ? (uint64_t) (now - agent->last_crash_at) / 1000: 0);
    }
}

bool
agd_agents_serve_lists (agd_broker_t *self)
{
    for (int i = 0; i < AGD_LIST_PER_PASS && self->lists_head; i++) {
        agd_job_t *job = self->lists_head;
        self->lists_head = job->next;
        if (!self->lists_head)
            self->lists_tail = NULL;
        job->next = NULL;
        uint64_t after;
        size_t limit;
        const char *reason;
        s_list_decode (self, job, &after, &limit, &reason);
        s_pack_page (self, after, limit);
        agd_broker_send_packed (self, job);
        agd_broker_job_free (self, job);
    }
    return self->lists_head != NULL;
}

void
agd_agents_listed (agd_broker_t *self, agd_agent_t *agent)
{
    if (agd_index_insert (self->listed, agent->id, agent))
        AGD_LOG (self->config, AGD_LOG_ERROR, zsys_error,
                 "out of memory: agent %" PRIu64 " is not listed",
                 agent->id);
}

void
agd_agents_pack_created (agd_broker_t *self, agd_agent_t *agent)
{
    msgpack_packer *pk = &self->packer;
    msgpack_sbuffer_clear (&self->buffer);
    msgpack_pack_map (pk, 3);
    agd_pack_str (pk, "id");
    msgpack_pack_uint64 (pk, agent->id);
    agd_pack_str (pk, "name");
    if (agent->name)
        agd_pack_str (pk, agent->name);
    else
        msgpack_pack_nil (pk);
    agd_pack_str (pk, "class");
    agd_registry_pack_class (pk, agent->cls);
}

//  ---------------------------------------------------------------------
void
agd_agents_create (agd_broker_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_create_t create;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_create_decode (&create, &body, &reason)) {
        agd_broker_error (self, job, AG_BAD_REQUEST,
                          "CREATE: %s", reason);
        agd_broker_job_free (self, job);
        return;
    }
    const ag_class_t *cls = agd_registry_find (self->args->registry,
        create.class_name.ptr, create.class_name.len);
    if (!cls) {
        agd_broker_error (self, job, AG_NO_CLASS,
                          "no class '%.*s' on this server",
                          (int) create.class_name.len, create.class_name.ptr);
        agd_broker_job_free (self, job);
        return;
    }
    char *name = NULL;
    if (create.name.ptr) {
        name = strndup (create.name.ptr, create.name.len);
        if (zhashx_lookup (self->names, name)) {
            agd_broker_error (self, job, AG_NAME_TAKEN,
                              "an agent named '%s' already exists", name);
            free (name);
            agd_broker_job_free (self, job);
            return;
        }
    }
    agd_client_t *client = job->client;
    agd_account_t *account = job->account;
    if (self->agents_counted >= self->config.max_agents) {
        agd_broker_error (self, job, AG_BUSY, "this server holds %zu agents,"
                          " its limit (server/max_agents)",
                          self->agents_counted);
        free (name);
        agd_broker_job_free (self, job);
        return;
    }
    //  Detached agents count against who made them too
    if (account->agents >= self->config.max_agents_per_client) {
        agd_broker_error (self, job, AG_BUSY, "this client (%s) made %zu of"
                          " the agents here, detached ones included, the"
                          " limit (server/max_agents_per_client)",
                          account->name, account->agents);
        free (name);
        agd_broker_job_free (self, job);
        return;
    }
    agd_agent_t *agent = (agd_agent_t *) zmalloc (sizeof (agd_agent_t));
    agent->id = ++self->next_agent_id;
    agent->cls = cls;
    agent->name = name;
    self->agents_counted++;
    agent->creator = account;
    agd_accounts_use (self->accounts, account);
    account->agents++;
    if (!create.detached) {
        agent->owner = client;
        agent->owner_next = client->agents;
        if (client->agents)
            client->agents->owner_prev = agent;
        client->agents = agent;
        client->owned++;
        //  A connection that dropped just now may be this client's,
        //  its CREATE read after the drop was seen: a suspect too
        if (self->last_suspect && !client->suspect_since
        &&  self->now - self->last_suspect < PROBE_AFTER_US) {
            client->suspect_since = self->now;
            agd_watch_check_by (self, self->now + agd_watch_grace_us (self));
        }
    }
    agent->created = ag_usecs ();
    if (agd_hosts_place (self, agent, &create)) {
        agd_broker_error (self, job, AG_INTERNAL, "out of memory");
        s_agent_uncount (self, agent);
        free (name);
        free (agent);
        agd_broker_job_free (self, job);
        return;
    }
    ag_idmap_insert (self->agents, agent->id, agent);
    if (name)
        zhashx_insert (self->names, name, agent);
    job->env.agent = agent->id;
    agd_pool_enqueue (self, agent, job);
}

//  LOOKUP: an agent by name or id, answered as its CREATE was
void
agd_agents_lookup (agd_broker_t *self, agd_job_t *job)
{
    msgpack_object body;
    const char *reason;
    agp_lookup_t lookup;
    msgpack_zone_clear (&self->zone);
    if (ag_msgpack_unpack (agp_msg_body (&job->body),
                           agp_msg_body_size (&job->body),
                           &self->zone, &body, &reason)
    ||  agp_lookup_decode (&lookup, &body, &reason)) {
        agd_broker_error (self, job, AG_BAD_REQUEST,
                          "LOOKUP: %s", reason);
        agd_broker_job_free (self, job);
        return;
    }
    agd_agent_t *agent;
    if (lookup.name.ptr) {
        char name [AGP_MAX_NAME + 1];
        memcpy (name, lookup.name.ptr, lookup.name.len);
        name [lookup.name.len] = 0;
        agent = (agd_agent_t *) zhashx_lookup (self->names, name);
        if (!agent)
            agd_broker_error (self, job, AG_NO_AGENT,
                              "no agent named '%s' on this server", name);
    }
    else {
        agent = (agd_agent_t *) ag_idmap_lookup (self->agents, lookup.id);
        if (agent && agent->deleting)
            agent = NULL;
        if (!agent)
            agd_broker_error (self, job, AG_NO_AGENT,
                              "no agent %" PRIu64 " on this server", lookup.id);
    }
    if (agent) {
        job->env.agent = agent->id;
        agd_agents_pack_created (self, agent);
        agd_broker_send_packed (self, job);
    }
    agd_broker_job_free (self, job);
}
