#ifndef MESH_CNATS_SHIM_H
#define MESH_CNATS_SHIM_H
#include <nats/nats.h>
#endif
