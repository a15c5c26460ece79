#ifndef MESH_CNATS_SHIM_H
#define MESH_CNATS_SHIM_H
#include <stdlib.h>
#include <dlfcn.h>
#include <nats/nats.h>

/// Frees memory that cnats documents as caller-owned (header key/value arrays).
static inline void meshnats_free(void *p) { free(p); }

/// Converts an integer token into the `void *closure` cnats passes back to callbacks.
static inline void *meshnats_token_to_ptr(uintptr_t token) { return (void *)token; }

/// Converts a callback `void *closure` back into the integer token it carries.
static inline uintptr_t meshnats_ptr_to_token(void *ptr) { return (uintptr_t)ptr; }

/// The head of every cnats object handed to its garbage collector (`natsGCItem` in
/// nats.c's src/gc.h): a `natsMsg` starts with one (src/msg.h, since cnats 1.0).
struct meshnats_gc_item {
    void *next;
    void (*freeCb)(void *);
};

/// Whether the layout above holds for the linked library, checked on two new messages: a
/// fresh message's `next` is NULL, and its second pointer is one and the same non-NULL
/// value in both (a function, the free callback), not one of either message's own subject,
/// reply or data pointers (which differ from message to message). 1 when it holds, else 0.
static inline int meshnats_msg_layout_holds(void)
{
    natsMsg *a = NULL;
    natsMsg *b = NULL;
    int holds = 0;
    if (natsMsg_Create(&a, "mesh.layout.a", NULL, "x", 1) == NATS_OK
        && natsMsg_Create(&b, "mesh.layout.b", "mesh.layout.reply", "y", 1) == NATS_OK)
    {
        struct meshnats_gc_item *ga = (struct meshnats_gc_item *)a;
        struct meshnats_gc_item *gb = (struct meshnats_gc_item *)b;
        void *fa = (void *)ga->freeCb;
        void *fb = (void *)gb->freeCb;
        holds = ga->next == NULL && gb->next == NULL && fa != NULL && fa == fb
            && fa != (void *)natsMsg_GetSubject(a) && fa != (void *)natsMsg_GetData(a)
            && fa != (void *)natsMsg_GetSubject(b) && fa != (void *)natsMsg_GetReply(b)
            && fa != (void *)natsMsg_GetData(b);
    }
    natsMsg_Destroy(a);
    natsMsg_Destroy(b);
    return holds;
}

/// `natsMsg_Destroy` that frees the message on the calling thread. cnats' own hands every
/// message to its garbage-collector thread (a lock and, when its list was empty, a
/// condition signal — a thread wake-up — per message: 11 % of a request-heavy client's
/// CPU); with the free callback cleared, `natsMsg_Destroy` frees it at once instead.
static inline void meshnats_msg_destroy(natsMsg *msg)
{
    if (msg != NULL)
        ((struct meshnats_gc_item *)msg)->freeCb = NULL;
    natsMsg_Destroy(msg);
}

/// cnats' internal publish, `natsConn_publish` (src/conn.h; the same signature from 3.0
/// through 3.13): the public publish functions call it with `directFlush` false, which on a
/// connection without SendAsap leaves the write to the flusher thread (≤ 1 ms later);
/// `directFlush` true writes the connection's whole buffer to the socket at once.
typedef natsStatus (*meshnats_publish_fn)(natsConnection *nc, natsMsg *msg, const char *reply, bool directFlush);

/// Looks `natsConn_publish` up in the loaded library: NULL unless the library is major
/// version 3 and exports it (its shared builds do).
static inline meshnats_publish_fn meshnats_find_internal_publish(void)
{
    if ((nats_GetVersionNumber() >> 16) != 3)
        return NULL;
    return (meshnats_publish_fn)dlsym(RTLD_DEFAULT, "natsConn_publish");
}

/// A connected callback that does nothing: with one, a retried first connect returns at
/// once (`natsOptions_SetRetryOnFailedConnect`) instead of blocking until connected.
static inline void meshnats_ignore_connected(natsConnection *nc, void *closure) { (void)nc; (void)closure; }

/// Reference responder for the raw benchmark: echoes the request payload to its reply
/// subject from the cnats delivery thread, with no Swift code in the path. A non-NULL
/// `closure` frees messages as the mesh does (`meshnats_msg_destroy`, when the layout holds).
static inline void meshnats_bench_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL)
        natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    if (closure != NULL)
        meshnats_msg_destroy(msg);
    else
        natsMsg_Destroy(msg);
}

#endif
