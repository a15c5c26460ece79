#ifndef MESH_CNATS_SHIM_H
#define MESH_CNATS_SHIM_H
#include <stdlib.h>
#include <nats/nats.h>

/// Frees memory that cnats documents as caller-owned (header key/value arrays).
static inline void meshnats_free(void *p) { free(p); }

/// Converts an integer token into the `void *closure` cnats passes back to callbacks.
static inline void *meshnats_token_to_ptr(uintptr_t token) { return (void *)token; }

/// Converts a callback `void *closure` back into the integer token it carries.
static inline uintptr_t meshnats_ptr_to_token(void *ptr) { return (uintptr_t)ptr; }

/// Reference responder for the raw benchmark: echoes the request payload to its reply
/// subject from the cnats delivery thread, with no Swift code in the path.
static inline void meshnats_bench_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub; (void)closure;
    const char *reply = natsMsg_GetReply(msg);
    if (reply != NULL)
        natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

#endif
