#ifndef MESH_CNATS_SHIM_H
#define MESH_CNATS_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* dladdr */
#endif
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
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

/// Whether the layout above holds for the linked library: a new message's free callback
/// (its second pointer) must be a function inside libnats. 1 when it holds, else 0.
static inline int meshnats_msg_layout_holds(void)
{
    natsMsg *msg = NULL;
    if (natsMsg_Create(&msg, "mesh.layout.check", NULL, NULL, 0) != NATS_OK || msg == NULL)
        return 0;
    void *callback = (void *)((struct meshnats_gc_item *)msg)->freeCb;
    Dl_info info;
    int holds = callback != NULL && dladdr(callback, &info) != 0 && info.dli_fname != NULL
        && strstr(info.dli_fname, "libnats") != NULL;
    natsMsg_Destroy(msg);
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
