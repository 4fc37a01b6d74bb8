/*  =========================================================================
    agc_query - what a server says about itself: ping, info, the agent list

    Copyright (c) the agentd authors. MIT licence; see LICENSE.
    =========================================================================
*/

#include "agc.h"

//  Round trip a body-less management request; returns its value
static ag_value_t *
s_query (agc_conn_t *self, uint8_t command)
{
    agc_future_t *future = agc_conn_roundtrip (self, command, 0, NULL, 0);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, 0);
    agc_future_destroy (&future);
    return value;
}

int64_t
agc_conn_ping (agc_conn_t *self)
{
    int64_t start = ag_usecs ();
    ag_value_t *value = s_query (self, AGP_PING);
    if (!value)
        return -1;
    ag_value_destroy (&value);
    return ag_usecs () - start;
}

ag_value_t *
agc_conn_info (agc_conn_t *self)
{
    return s_query (self, AGP_INFO);
}

ag_value_t *
agc_conn_list_page (agc_conn_t *self, uint64_t after, size_t limit)
{
    ag_value_t *body = ag_value_new ("{s:u, s:u}", "after", after,
                                     "limit", (uint64_t) MAX (limit, 1));
    if (!body) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    agc_future_t *future = agc_conn_roundtrip (self, AGP_LIST, 0,
                                               ag_value_data (body),
                                               ag_value_size (body));
    ag_value_destroy (&body);
    if (!future) {
        agc_set_error (AG_INTERNAL, "out of memory");
        return NULL;
    }
    ag_value_t *value = agc_future_result (future, 0);
    if (!value)
        agc_set_error_from (future);
    agc_future_destroy (&future);
    return value;
}

ag_value_t *
agc_conn_list (agc_conn_t *self)
{
    //  The server answers in pages: ask for the next until one comes
    //  short, and join them into one array
    ag_value_t **pages = NULL;
    size_t count = 0, alloc = 0, total = 0;
    uint64_t after = 0;
    bool failed = false;
    while (true) {
        ag_value_t *page = agc_conn_list_page (self, after, AGC_LIST_PAGE);
        if (!page) {
            failed = true;
            break;
        }
        if (count == alloc) {
            alloc = alloc? alloc * 2: 8;
            ag_value_t **more = (ag_value_t **) realloc (pages, alloc
                                                 * sizeof (ag_value_t *));
            if (!more) {
                agc_set_error (AG_INTERNAL, "out of memory");
                ag_value_destroy (&page);
                failed = true;
                break;
            }
            pages = more;
        }
        pages [count++] = page;
        const msgpack_object *items = ag_value_object (page);
        size_t size = items->type == MSGPACK_OBJECT_ARRAY
                    ? items->via.array.size: 0;
        total += size;
        if (size < AGC_LIST_PAGE)
            break;
        after = (uint64_t) ag_obj_int (ag_obj_get (&items->via.array.ptr
                                                   [size - 1], "id"), 0);
        if (after == 0)
            break;                  //  a page without ids: the last one
    }
    ag_value_t *list = NULL;
    if (!failed) {
        msgpack_sbuffer buffer;
        msgpack_sbuffer_init (&buffer);
        msgpack_packer packer;
        msgpack_packer_init (&packer, &buffer, msgpack_sbuffer_write);
        msgpack_pack_array (&packer, total);
        for (size_t p = 0; p < count; p++) {
            const msgpack_object *items = ag_value_object (pages [p]);
            for (uint32_t i = 0; items->type == MSGPACK_OBJECT_ARRAY
                                 && i < items->via.array.size; i++)
                msgpack_pack_object (&packer, items->via.array.ptr [i]);
        }
        list = ag_value_decode (buffer.data, buffer.size);
        msgpack_sbuffer_destroy (&buffer);
        if (!list)
            agc_set_error (AG_INTERNAL, "out of memory");
    }
    for (size_t p = 0; p < count; p++)
        ag_value_destroy (&pages [p]);
    free (pages);
    return list;
}
